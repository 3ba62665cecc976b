//! The registry of a loop's open transports, a loop service: closing the loop releases
//! the ones still open.
//!
//! A protocol that keeps its transport (the usual pattern) and the transport that owns
//! the protocol form a cycle that only `connection_lost` breaks; when the loop closes
//! first, [`Live::release`] breaks it, or the socket and the loop's own fds would stay
//! open for good. Released in [`Phase::Transports`], the first service phase: after the
//! loop's tasks were cancelled, before signals, executor and processes close.

use std::cell::RefCell;
use std::rc::Weak;

use slab::Slab;

use crate::event_loop::{EventLoop, Phase, Service};

/// A transport still open, registered with its loop (see the module docs).
pub(crate) trait Live {
    /// Drops the protocol and the transport's fd without calling the protocol (the loop
    /// is closing; ops still in the kernel keep what they point into until their CQEs).
    fn release(&self);
}

/// The open transports of one loop.
#[derive(Default)]
pub(crate) struct LiveTransports {
    live: RefCell<Slab<Weak<dyn Live>>>,
}

impl LiveTransports {
    /// Registers a transport to release at close; the key unregisters it.
    pub(crate) fn register(event_loop: &EventLoop, live: Weak<dyn Live>) -> usize {
        event_loop
            .service::<LiveTransports>()
            .live
            .borrow_mut()
            .insert(live)
    }

    /// Forgets a transport registered with [`LiveTransports::register`] (it is over).
    pub(crate) fn unregister(event_loop: &EventLoop, key: usize) {
        let Some(this) = event_loop.existing_service::<LiveTransports>() else {
            return;
        };
        // A drop during close's release finds the slab taken (or borrowed): nothing to do.
        if let Ok(mut live) = this.live.try_borrow_mut() {
            live.try_remove(key);
        }
    }
}

impl Service for LiveTransports {
    fn phase(&self) -> Phase {
        Phase::Transports
    }

    /// Open transports let go of their protocols (breaking protocol <-> transport
    /// cycles) and fds; their ops' memory stays with the driver's slots until shutdown.
    fn close(&self) {
        let live = std::mem::take(&mut *self.live.borrow_mut());
        for (_, t) in live {
            if let Some(t) = t.upgrade() {
                t.release();
            }
        }
    }
}
