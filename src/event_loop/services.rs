//! The loop's services: everything loop-wide but optional, attached to a loop through one
//! registry.
//!
//! The loop core knows only its ready queue, timers, tasks, cross-thread queue and driver.
//! Signal handlers (`crate::signal`), the default executor (`crate::executor`), child
//! processes (`crate::process`), the receive buffer rings (`crate::buf::rings`) and the
//! registry of open transports (`crate::transport::live`) are services: each is a type
//! implementing [`Service`], created on first use by [`EventLoop::service`] and kept
//! until the loop is dropped. Adding one touches no loop field.
//!
//! # Shutdown order
//!
//! [`EventLoop::close`](crate::EventLoop::close) first cancels every task, drops the ready
//! queue and the timers and clears the before-submit flushes; then it calls each
//! service's [`Service::close`] in [`Phase`] order (services of one phase in the order
//! they were created), closing the cross-thread queue between [`Phase::Processes`] and
//! [`Phase::Buffers`]; last, it shuts the driver down. Each service is closed once. A
//! service created on a closed loop (by a task's destructor during close, or later) is
//! closed as it is created, so nothing a service holds outlives its loop's close.
//!
//! A lookup scans a vector of a handful of entries by `TypeId`; hot paths (a transport's
//! receive completion) keep the `Rc` they got instead of looking up again.

use std::any::{Any, TypeId};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::EventLoop;

/// When a service's close hook runs, relative to the others: earlier phases first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    /// Open transports let go of their protocols and fds (breaking protocol <-> transport
    /// cycles); their ops' memory stays with the driver until it shuts down.
    Transports,
    /// Signal handlers: the reader stops, masks are restored.
    Signals,
    /// The default executor shuts down without waiting; results on their way are dropped.
    Executor,
    /// Child processes still running are killed and reaped.
    Processes,
    /// After the cross-thread queue closed: memory the kernel may still be pointed at by
    /// ops in flight (buffer rings), released just before the driver's shutdown.
    Buffers,
}

/// Something loop-wide a loop holds for its users, with a hook run by the loop's close.
pub(crate) trait Service: Any {
    /// When [`Service::close`] runs (see the module docs).
    fn phase(&self) -> Phase;
    /// The loop closes: let go of what the service holds. Runs once per service, on the
    /// loop's thread, with no loop borrow held (it may call the loop).
    fn close(&self);
}

struct Entry {
    type_id: TypeId,
    phase: Phase,
    any: Rc<dyn Any>,
    service: Rc<dyn Service>,
    closed: Cell<bool>,
}

/// The registry: one entry per service type, in creation order.
#[derive(Default)]
pub(crate) struct Services {
    entries: RefCell<Vec<Entry>>,
}

impl Services {
    /// The service of type `T`, if one was created.
    pub(crate) fn get<T: Service>(&self) -> Option<Rc<T>> {
        let id = TypeId::of::<T>();
        let entries = self.entries.borrow();
        let entry = entries.iter().find(|e| e.type_id == id)?;
        entry.any.clone().downcast::<T>().ok()
    }

    /// Adds `service` unless one of its type exists; returns the registered one and
    /// whether it is the new one. `closed`: the new entry counts as closed already (the
    /// caller closes it).
    fn insert<T: Service>(&self, service: Rc<T>, closed: bool) -> (Rc<T>, bool) {
        if let Some(existing) = self.get::<T>() {
            return (existing, false);
        }
        let phase = service.phase();
        self.entries.borrow_mut().push(Entry {
            type_id: TypeId::of::<T>(),
            phase,
            any: service.clone(),
            service: service.clone(),
            closed: Cell::new(closed),
        });
        (service, true)
    }

    /// The next service to close whose phase is at most `last` — the earliest phase,
    /// then the first created — marked closed. Asked again after each close hook, so a
    /// service a hook creates is not missed.
    pub(crate) fn next_to_close(&self, last: Phase) -> Option<Rc<dyn Service>> {
        let entries = self.entries.borrow();
        let entry = entries
            .iter()
            .filter(|e| !e.closed.get() && e.phase <= last)
            .min_by_key(|e| e.phase)?;
        entry.closed.set(true);
        Some(entry.service.clone())
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.borrow().len()
    }
}

impl EventLoop {
    /// The loop's service of type `T`, created with `T::default()` on first use.
    pub(crate) fn service<T: Service + Default>(&self) -> Rc<T> {
        self.service_with(T::default)
    }

    /// The loop's service of type `T`, created with `create` on first use. On a closed
    /// loop a new service is closed before it is returned.
    pub(crate) fn service_with<T: Service>(&self, create: impl FnOnce() -> T) -> Rc<T> {
        let services = &self.inner.services;
        if let Some(existing) = services.get::<T>() {
            return existing;
        }
        // Created outside every borrow: `create` may look up other services.
        let closed = self.is_closed();
        let (service, new) = services.insert(Rc::new(create()), closed);
        if new && closed {
            service.close();
        }
        service
    }

    /// The loop's service of type `T` if it was created; never creates one.
    pub(crate) fn existing_service<T: Service>(&self) -> Option<Rc<T>> {
        self.inner.services.get::<T>()
    }
}
