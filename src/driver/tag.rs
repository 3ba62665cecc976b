//! `user_data` tagging: the one place that says what the 64 bits of an SQE's (and its
//! CQEs') `user_data` mean.
//!
//! ```text
//! bit 63      62      61..56        55..32            31..0
//! internal=0  quiet   generation (30 bits, top 6 here)    slot index      an op's slot
//! internal=1  kind (bits 56..62)    kind-specific payload (a timer generation)
//! ```
//!
//! An op's `user_data` is its slot key: the slot index and a generation, so a CQE for a
//! slot that was freed and reused (a stale CQE) never completes the newer op. The
//! generation's top bit marks a quiet op (see `quiet`). Internal SQEs — the driver's own
//! cancels, the loop's timer and its wake-up read — never name a slot and never reach
//! the loop.

/// Bit 63 marks the driver's own internal SQEs (never a slot).
pub(crate) const INTERNAL_BIT: u64 = 1 << 63;
/// Bit 62 marks a quiet op (one submitted with `IOSQE_CQE_SKIP_SUCCESS`, whose success
/// the driver settles itself): the top bit of the key's generation, so the key, its slot
/// and every CQE agree on it.
pub(crate) const QUIET_BIT: u64 = 1 << 62;
const QUIET_GENERATION_BIT: u32 = (QUIET_BIT >> 32) as u32;
/// The generations a slot key cycles through (the quiet bit excluded).
pub(crate) const GENERATION_MASK: u32 = QUIET_GENERATION_BIT - 1;

/// Internal kinds (bits 56..62 with bit 63 set).
pub(crate) const CANCEL: u64 = INTERNAL_BIT | (1 << 56);
pub(crate) const WAKE_READ: u64 = INTERNAL_BIT | (2 << 56);
pub(crate) const TIMER: u64 = INTERNAL_BIT | (3 << 56);
pub(crate) const TIMER_UPDATE: u64 = INTERNAL_BIT | (4 << 56);
/// The kind bits of an internal `user_data`; what is left is the kind's payload.
pub(crate) const KIND_MASK: u64 = INTERNAL_BIT | (0x7F << 56);
/// Payloads (a timer generation) fit below the kind.
pub(crate) const PAYLOAD_MASK: u64 = (1 << 56) - 1;

/// Whether a `user_data` is one of the driver's internal SQEs.
pub(crate) fn is_internal(user_data: u64) -> bool {
    user_data & INTERNAL_BIT != 0
}

/// Whether a `user_data` names a quiet op's slot.
pub(crate) fn is_quiet_op(user_data: u64) -> bool {
    user_data & (QUIET_BIT | INTERNAL_BIT) == QUIET_BIT
}

/// The key of one in-flight operation; its `user_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct OpKey {
    index: u32,
    generation: u32,
}

impl OpKey {
    /// A key for slot `index` with `generation` (already masked), quiet or not.
    pub(crate) fn new(index: u32, generation: u32, quiet: bool) -> Self {
        debug_assert!(generation & !GENERATION_MASK == 0);
        let generation = if quiet {
            generation | QUIET_GENERATION_BIT
        } else {
            generation
        };
        OpKey { index, generation }
    }

    /// The slot index.
    pub(crate) fn index(self) -> usize {
        self.index as usize
    }

    /// The generation stored with the slot (quiet bit included).
    pub(crate) fn generation(self) -> u32 {
        self.generation
    }

    /// The `user_data` carried by this op's SQE and CQEs.
    pub(crate) fn user_data(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }

    /// Whether the op was pushed quiet (see [`QUIET_BIT`]).
    pub(crate) fn is_quiet(self) -> bool {
        self.generation & QUIET_GENERATION_BIT != 0
    }

    /// The key a `user_data` stands for; `None` for internal SQEs.
    pub(crate) fn from_user_data(user_data: u64) -> Option<Self> {
        if is_internal(user_data) {
            return None;
        }
        Some(OpKey {
            index: user_data as u32,
            generation: (user_data >> 32) as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_internal_kinds_are_never_keys() {
        let key = OpKey::new(7, 12345, false);
        assert_eq!(OpKey::from_user_data(key.user_data()), Some(key));
        let quiet = OpKey::new(7, 12345, true);
        assert!(quiet.is_quiet() && !key.is_quiet());
        assert!(is_quiet_op(quiet.user_data()) && !is_quiet_op(key.user_data()));
        for kind in [CANCEL, WAKE_READ, TIMER | 5, TIMER_UPDATE] {
            assert_eq!(OpKey::from_user_data(kind), None);
            assert!(!is_quiet_op(kind | QUIET_BIT));
        }
        assert_eq!((TIMER | 5) & KIND_MASK, TIMER);
        assert_eq!((TIMER | 5) & PAYLOAD_MASK, 5);
    }
}
