//! `Kind`: what a shmbus object is. A module of its own so that `error` (which names kinds
//! in `Error::WrongKind`) and `header` (which records them) both use it without importing
//! each other.

use std::fmt;

/// What a shmbus object is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// A plain block of bytes ([`crate::Segment`]).
    Segment,
    /// A cross-process event ([`crate::Event`]).
    Event,
    /// A latest-value blackboard ([`crate::Blackboard`]).
    Blackboard,
    /// A broadcast channel ([`crate::Publisher`], [`crate::Subscriber`]).
    Channel,
    /// A set of latest-value boards, one per key ([`crate::KeyedBlackboard`]).
    KeyedBlackboard,
}

impl Kind {
    pub(crate) const fn to_raw(self) -> u32 {
        match self {
            Kind::Segment => 1,
            Kind::Event => 2,
            Kind::Blackboard => 3,
            Kind::Channel => 4,
            Kind::KeyedBlackboard => 5,
        }
    }

    pub(crate) fn from_raw(raw: u32) -> Option<Kind> {
        match raw {
            1 => Some(Kind::Segment),
            2 => Some(Kind::Event),
            3 => Some(Kind::Blackboard),
            4 => Some(Kind::Channel),
            5 => Some(Kind::KeyedBlackboard),
            _ => None,
        }
    }

    /// The lower-case name `ls` and `info` print.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Segment => "segment",
            Kind::Event => "event",
            Kind::Blackboard => "blackboard",
            Kind::Channel => "channel",
            Kind::KeyedBlackboard => "keyed-blackboard",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
