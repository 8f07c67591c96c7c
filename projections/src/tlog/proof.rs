//! What an auditor is handed, and the offline check of it.
//!
//! A [`ProofBundle`] is a tenant's newest checkpoint with the proofs asked for: that rows are
//! in its tree (inclusion) and that the checkpoint the auditor saved last time is a prefix of
//! it (consistency). [`verify`] checks a bundle with the published key alone, against the
//! auditor's own copy of the rows (an export or the archives) and of their last checkpoint.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tlog_tiles::Hash;

use super::checkpoint::{self, CheckpointError, SignedCheckpoint};
use super::tree::{self, Tiles};

/// A row's inclusion proof.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inclusion {
    /// The row's `seq` (leaf `seq - 1`).
    pub seq: i64,
    /// The audit path, leaf to root, base64.
    #[serde(with = "base64_hashes")]
    pub proof: Vec<Hash>,
}

/// The proof that a tree of `old_size` is a prefix of the checkpoint's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Consistency {
    /// The earlier size.
    pub old_size: u64,
    /// The consistency proof, base64.
    #[serde(with = "base64_hashes")]
    pub proof: Vec<Hash>,
}

/// A checkpoint and the proofs an auditor asked for against it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProofBundle {
    /// The signed note.
    pub checkpoint: String,
    /// Rows' inclusion proofs, against `checkpoint`.
    #[serde(default)]
    pub inclusions: Vec<Inclusion>,
    /// The consistency proof from an earlier size to `checkpoint`.
    #[serde(default)]
    pub consistency: Option<Consistency>,
}

/// What a bundle was checked against, besides the key.
#[derive(Debug, Default)]
pub struct AuditorCopy<'a> {
    /// Rows the auditor holds, by `seq`: the leaf hashes of their canonical bytes
    /// ([`tree::leaf_hash`]). Rows from the first are an export, checked whole against the
    /// root; others are checked by their inclusion proofs.
    pub leaves: BTreeMap<i64, Hash>,
    /// The checkpoint the auditor saved last time (a signed note).
    pub last_checkpoint: Option<&'a str>,
}

/// What verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogVerified {
    /// The checkpoint's size.
    pub size: u64,
    /// The auditor's rows found in its tree (rows after it are newer than the checkpoint).
    pub rows_checked: usize,
    /// Whether they were the whole tree (rows 1 to size), recomputed to its root; otherwise
    /// each was proven by its inclusion proof.
    pub whole_tree: bool,
    /// The size of the auditor's last checkpoint that the new one extends.
    pub extends: Option<u64>,
}

/// Why a bundle does not verify; each is a reason to exit 1.
#[derive(Debug, thiserror::Error)]
pub enum LogProblem {
    /// A checkpoint is unsigned, signed by another key, or for another log.
    #[error("checkpoint refused: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The new checkpoint is smaller than the auditor's last: the log was cut back.
    #[error("the log shrank: the last checkpoint had {last} rows, this one {size}")]
    Shrunk {
        /// The last checkpoint's size.
        last: u64,
        /// This one's.
        size: u64,
    },
    /// Two checkpoints that cannot both be true: a split view or a rewritten history.
    #[error("the checkpoint of size {size} does not extend the last one of size {last}: a split view or a rewritten history")]
    NotConsistent {
        /// The last checkpoint's size.
        last: u64,
        /// This one's.
        size: u64,
    },
    /// The auditor's last checkpoint was given but the bundle proves nothing about it.
    #[error("the bundle has no consistency proof from size {0}")]
    NoConsistencyProof(u64),
    /// A row the auditor holds is not the row the log has at that place.
    #[error("row {seq} is not in the log as the checkpoint signs it (altered, or not the row at that place)")]
    NotIncluded {
        /// The row's `seq`.
        seq: i64,
    },
    /// An export from the first row lacks a row of the tree.
    #[error("row {0} is missing: the rows given start at 1 but skip it")]
    RowMissing(i64),
    /// A row given from within the tree has no inclusion proof in the bundle.
    #[error("row {0} has no inclusion proof in the bundle")]
    Unproven(i64),
    /// A proof names a row the auditor does not hold.
    #[error("the bundle proves row {0}, which the rows given do not hold")]
    RowNotGiven(i64),
    /// The auditor's rows 1 to size do not make the checkpoint's root.
    #[error(
        "rows 1 to {size} do not make the checkpoint's root: a row was altered, dropped or added"
    )]
    WrongRoot {
        /// The checkpoint's size.
        size: u64,
    },
}

/// Checks `bundle` with the verifier key `key` for the log of `origin`, against `copy`.
pub fn verify(
    key: &str,
    origin: &str,
    bundle: &ProofBundle,
    copy: &AuditorCopy<'_>,
) -> Result<LogVerified, LogProblem> {
    let signed = checkpoint::open(&bundle.checkpoint, key, origin)?;
    let extends = match copy.last_checkpoint {
        Some(last) => Some(extends(key, origin, &signed, bundle, last)?),
        None => None,
    };
    let mut proven = BTreeMap::new();
    for inclusion in &bundle.inclusions {
        let leaf = copy
            .leaves
            .get(&inclusion.seq)
            .ok_or(LogProblem::RowNotGiven(inclusion.seq))?;
        let index = u64::try_from(inclusion.seq - 1)
            .map_err(|_| LogProblem::NotIncluded { seq: inclusion.seq })?;
        tree::verify_inclusion(&inclusion.proof, signed.size, signed.root, index, *leaf)
            .map_err(|_| LogProblem::NotIncluded { seq: inclusion.seq })?;
        proven.insert(inclusion.seq, ());
    }
    let in_tree = copy.leaves.range(1..=signed.size as i64);
    let whole_tree = copy.leaves.contains_key(&1);
    if whole_tree {
        // An export from the first row: it must be the tree, row for row.
        if let Some(missing) = (1..=signed.size as i64).find(|seq| !copy.leaves.contains_key(seq)) {
            return Err(LogProblem::RowMissing(missing));
        }
        if root_of(&copy.leaves, signed.size) != signed.root {
            return Err(LogProblem::WrongRoot { size: signed.size });
        }
    } else if let Some((seq, _)) = in_tree.clone().find(|(seq, _)| !proven.contains_key(*seq)) {
        return Err(LogProblem::Unproven(*seq));
    }
    Ok(LogVerified {
        size: signed.size,
        rows_checked: in_tree.count(),
        whole_tree,
        extends,
    })
}

/// Checks that `signed` extends the auditor's `last` checkpoint; returns the last size.
fn extends(
    key: &str,
    origin: &str,
    signed: &SignedCheckpoint,
    bundle: &ProofBundle,
    last: &str,
) -> Result<u64, LogProblem> {
    let last = checkpoint::open(last, key, origin)?;
    if last.size > signed.size {
        return Err(LogProblem::Shrunk {
            last: last.size,
            size: signed.size,
        });
    }
    let not_consistent = LogProblem::NotConsistent {
        last: last.size,
        size: signed.size,
    };
    if last.size == signed.size {
        return if last.root == signed.root {
            Ok(last.size)
        } else {
            Err(not_consistent)
        };
    }
    let consistency = bundle
        .consistency
        .as_ref()
        .filter(|consistency| consistency.old_size == last.size)
        .ok_or(LogProblem::NoConsistencyProof(last.size))?;
    tree::verify_consistency(
        &consistency.proof,
        signed.size,
        signed.root,
        last.size,
        last.root,
    )
    .map_err(|_| not_consistent)?;
    Ok(last.size)
}

/// The root of the tree over rows 1 to `size`, computed as the integrator does, from tiles
/// kept in memory.
fn root_of(leaves: &BTreeMap<i64, Hash>, size: u64) -> Hash {
    let leaves: Vec<Hash> = leaves
        .range(1..=size as i64)
        .map(|(_, leaf)| *leaf)
        .collect();
    Tiles::default()
        .append(0, &leaves)
        .expect("an append from the empty tree reads no tile")
        .root
}

/// `Vec<Hash>` as base64 strings, the checkpoints' encoding of a hash.
mod base64_hashes {
    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serializer};
    use tlog_tiles::Hash;

    pub fn serialize<S: Serializer>(hashes: &[Hash], serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(hashes.len()))?;
        for hash in hashes {
            seq.serialize_element(&hash.to_string())?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Hash>, D::Error> {
        Vec::<Hash>::deserialize(deserializer)
    }
}
