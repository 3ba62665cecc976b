//! The item orders a queue can keep: [`Fifo`] ([`Queue`](super::Queue)), [`Lifo`]
//! ([`LifoQueue`](super::LifoQueue)) and [`Priority`]
//! ([`PriorityQueue`](super::PriorityQueue)), behind the [`Store`] trait.
//!
//! asyncio's subclasses override `_init`, `_put` and `_get`; here the order is a type
//! parameter, and a [`Store`] of one's own gives a queue with another order.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// Where a queue keeps its items, and in which order `get` takes them (asyncio's
/// `_init`/`_put`/`_get`).
pub trait Store {
    /// The items' type.
    type Item;
    /// The name `Display`/`Debug` print (`"Queue"`, `"LifoQueue"`, ...).
    const NAME: &'static str;
    /// An empty store.
    fn new() -> Self;
    /// Adds an item.
    fn push(&mut self, item: Self::Item);
    /// Takes the next item, in this store's order.
    fn pop(&mut self) -> Option<Self::Item>;
    /// How many items are stored.
    fn len(&self) -> usize;
    /// Whether no item is stored.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The items, for `Debug` (any order).
    fn items(&self) -> Vec<&Self::Item>;
}

/// First in, first out.
pub struct Fifo<T>(VecDeque<T>);

impl<T> Store for Fifo<T> {
    type Item = T;
    const NAME: &'static str = "Queue";
    fn new() -> Self {
        Fifo(VecDeque::new())
    }
    fn push(&mut self, item: T) {
        self.0.push_back(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop_front()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn items(&self) -> Vec<&T> {
        self.0.iter().collect()
    }
}

/// Last in, first out.
pub struct Lifo<T>(Vec<T>);

impl<T> Store for Lifo<T> {
    type Item = T;
    const NAME: &'static str = "LifoQueue";
    fn new() -> Self {
        Lifo(Vec::new())
    }
    fn push(&mut self, item: T) {
        self.0.push(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn items(&self) -> Vec<&T> {
        self.0.iter().collect()
    }
}

/// Lowest first (asyncio's `heapq` min-heap); equal items in no set order.
pub struct Priority<T>(BinaryHeap<Reverse<T>>);

impl<T: Ord> Store for Priority<T> {
    type Item = T;
    const NAME: &'static str = "PriorityQueue";
    fn new() -> Self {
        Priority(BinaryHeap::new())
    }
    fn push(&mut self, item: T) {
        self.0.push(Reverse(item));
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop().map(|Reverse(t)| t)
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn items(&self) -> Vec<&T> {
        self.0.iter().map(|Reverse(t)| t).collect()
    }
}
