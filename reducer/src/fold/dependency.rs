//! What a record's run touched, as the fold sees it: accesses to the state, the dependency
//! tokens a [`Fold`](super::Fold) maps them to, and how each token was used. Two records whose
//! footprints share a token with conflicting uses must keep their order on redo
//! (`spec/convergence.md` §5).

use threads_protocol::store::KeyRange;

/// One access a record's run made to the state, as [`Fold::dependencies`](super::Fold::dependencies) sees it.
#[derive(Clone, Copy, Debug)]
pub enum Access<'a> {
    /// A point read.
    Get(&'a [u8]),
    /// A range read (the whole range counts, even if the visitor stopped early).
    Scan(&'a KeyRange<'a>),
    /// A write or a delete (the previous value is read too).
    Write(&'a [u8]),
}

/// How a run uses a dependency token. Two uses of one token by two records **conflict** unless
/// both are [`Usage::Read`] or both are [`Usage::Mark`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Usage {
    /// Reads what the token stands for.
    Read = 1,
    /// Changes part of what the token stands for without reading the rest (an index entry
    /// under an indexed value): conflicts with readers and writers of the token, not with
    /// other markers.
    Mark = 2,
    /// Reads and writes what the token stands for.
    Write = 3,
}

impl Usage {
    pub(super) const ALL: [Usage; 3] = [Usage::Read, Usage::Mark, Usage::Write];

    /// Whether two uses of one token conflict.
    pub fn conflicts(self, other: Usage) -> bool {
        !(self == other && self != Usage::Write)
    }

    pub(super) fn from_u8(b: u8) -> Option<Usage> {
        Usage::ALL.into_iter().find(|u| *u as u8 == b)
    }

    /// The use that covers both (a token read and marked, or written, is written).
    pub(super) fn join(self, other: Usage) -> Usage {
        if self == other { self } else { Usage::Write }
    }
}

/// A dependency token a run touched, and how. The empty token stands for the whole thread:
/// every run reads it implicitly, so writing it conflicts with every record.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dependency {
    /// Any bytes naming a part of the state; only equality matters.
    pub token: Vec<u8>,
    /// How the run used it.
    pub usage: Usage,
}

impl Dependency {
    /// A read of `token`.
    pub fn read(token: Vec<u8>) -> Self {
        Dependency {
            token,
            usage: Usage::Read,
        }
    }

    /// A write of `token`.
    pub fn write(token: Vec<u8>) -> Self {
        Dependency {
            token,
            usage: Usage::Write,
        }
    }

    /// A mark of `token` (see [`Usage::Mark`]).
    pub fn mark(token: Vec<u8>) -> Self {
        Dependency {
            token,
            usage: Usage::Mark,
        }
    }

    /// A write of the whole thread: conflicts with every record.
    pub fn everything() -> Self {
        Dependency::write(Vec::new())
    }
}
