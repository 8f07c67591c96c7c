//! A tenant's Merkle tree as C2SP tiles: appending leaves, the root, and the proofs.
//!
//! The hashing, the stored-hash layout and the proofs are `tlog_tiles`' (RFC 6962/9162: a
//! leaf is `SHA-256(0x00 ‖ bytes)`, a node `SHA-256(0x01 ‖ left ‖ right)`); this module keeps
//! the tiles that hold a tree and says which it lacks. Everything here is pure: the caller
//! fetches the tiles [`Tiles::missing`] names and asks again.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use tlog_tiles::{
    check_record, check_tree, prove_record, prove_tree, record_hash, stored_hash_index,
    stored_hashes_for_record_hash, tree_hash, Hash, HashReader, Tile,
};

pub use tlog_tiles::Hash as NodeHash;
/// The root of the empty tree: `SHA-256` of nothing.
pub use tlog_tiles::EMPTY_HASH as EMPTY_ROOT;

/// Tiles are 2⁸ hashes wide, as C2SP `tlog-tiles` fixes.
pub const TILE_HEIGHT: u8 = 8;

/// Where a tile sits: its tile level and its index in that level.
pub type TileKey = (u8, u64);

/// Why a tree operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// Tiles the operation needs are not at hand: fetch [`Tiles::missing`] and retry.
    #[error("{0} tiles are missing")]
    Missing(usize),
    /// The tiles, the sizes or a proof do not fit together.
    #[error(transparent)]
    Tlog(#[from] tlog_tiles::Error),
}

/// Tile data by position, as stored (a partial tile may be wider than a smaller tree needs:
/// only its prefix is read), and the positions asked for but absent.
#[derive(Debug, Default)]
pub struct Tiles {
    data: HashMap<TileKey, Vec<u8>>,
    missing: RefCell<BTreeSet<TileKey>>,
}

impl Tiles {
    /// Holds `data` as the tile at `key`.
    pub fn insert(&mut self, key: TileKey, data: Vec<u8>) {
        self.missing.borrow_mut().remove(&key);
        self.data.insert(key, data);
    }

    /// The tiles asked for since the last call that were not at hand.
    pub fn missing(&self) -> Vec<TileKey> {
        std::mem::take(&mut *self.missing.borrow_mut())
            .into_iter()
            .collect()
    }

    /// The tree's root at `size`.
    pub fn root(&self, size: u64) -> Result<Hash, TreeError> {
        self.answer(|| tree_hash(size, self))
    }

    /// The inclusion proof of leaf `index` in the tree of `size`.
    pub fn inclusion_proof(&self, size: u64, index: u64) -> Result<Vec<Hash>, TreeError> {
        self.answer(|| prove_record(size, index, self))
    }

    /// The proof that the tree of `old_size` (≥ 1) is a prefix of the tree of `size`.
    pub fn consistency_proof(&self, size: u64, old_size: u64) -> Result<Vec<Hash>, TreeError> {
        self.answer(|| prove_tree(size, old_size, self))
    }

    /// Appends `leaves` (their hashes) to the tree of `size` and returns the tiles that
    /// changed, each whole, and the new root.
    pub fn append(&self, size: u64, leaves: &[Hash]) -> Result<Appended, TreeError> {
        let grown = Grown {
            tiles: self,
            new: RefCell::new(HashMap::new()),
        };
        for (offset, leaf) in (0u64..).zip(leaves) {
            let n = size + offset;
            let hashes = self.answer(|| stored_hashes_for_record_hash(n, *leaf, &grown))?;
            let first = stored_hash_index(0, n);
            grown.new.borrow_mut().extend((first..).zip(hashes));
        }
        let new_size = size + leaves.len() as u64;
        let tiles = Tile::new_tiles(TILE_HEIGHT, size, new_size)
            .into_iter()
            .map(|tile| {
                let data = self.answer(|| tile.read_data(&grown))?;
                Ok(((tile.level(), tile.level_index()), data))
            })
            .collect::<Result<Vec<_>, TreeError>>()?;
        let root = self.answer(|| tree_hash(new_size, &grown))?;
        Ok(Appended {
            tiles,
            size: new_size,
            root,
        })
    }

    /// The tiles an append from `size` to `new_size` reads: those holding the roots of the
    /// complete subtrees at `size` (the tree's right edge), and the partial tiles it extends.
    pub fn read_by_append(size: u64, new_size: u64) -> Vec<TileKey> {
        let right_edge = (0..64u8)
            .filter(|level| size >> level & 1 == 1)
            .map(|level| {
                Tile::from_index(TILE_HEIGHT, stored_hash_index(level, (size >> level) - 1))
            });
        let extended = Tile::new_tiles(TILE_HEIGHT, size, new_size);
        let mut keys: Vec<TileKey> = right_edge
            .chain(extended)
            .map(|tile| (tile.level(), tile.level_index()))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// Runs `operation`, turning a failure caused by absent tiles into [`TreeError::Missing`].
    fn answer<T>(
        &self,
        operation: impl FnOnce() -> Result<T, tlog_tiles::Error>,
    ) -> Result<T, TreeError> {
        let answer = operation();
        let missing = self.missing.borrow().len();
        match answer {
            Err(_) if missing > 0 => Err(TreeError::Missing(missing)),
            answer => Ok(answer?),
        }
    }
}

impl HashReader for Tiles {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        let mut hashes = Vec::with_capacity(indexes.len());
        for &index in indexes {
            let tile = Tile::from_index(TILE_HEIGHT, index);
            let key = (tile.level(), tile.level_index());
            match self.data.get(&key) {
                Some(data) => hashes.push(tile.hash_at_index(data, index)?),
                None => {
                    self.missing.borrow_mut().insert(key);
                }
            }
        }
        if hashes.len() < indexes.len() {
            return Err(tlog_tiles::Error::IndexesNotInTree);
        }
        Ok(hashes)
    }
}

/// The tree being appended to: the hashes stored so far in this append, over the tiles.
struct Grown<'a> {
    tiles: &'a Tiles,
    new: RefCell<HashMap<u64, Hash>>,
}

impl HashReader for Grown<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        let new = self.new.borrow();
        let old: Vec<u64> = indexes
            .iter()
            .copied()
            .filter(|index| !new.contains_key(index))
            .collect();
        let mut old = self.tiles.read_hashes(&old)?.into_iter();
        Ok(indexes
            .iter()
            .map(|index| match new.get(index) {
                Some(hash) => *hash,
                None => old.next().expect("one old hash per index not new"),
            })
            .collect())
    }
}

/// What an append changed.
#[derive(Debug)]
pub struct Appended {
    /// Each tile that changed, whole: to write over the stored one.
    pub tiles: Vec<(TileKey, Vec<u8>)>,
    /// The tree's new size.
    pub size: u64,
    /// Its new root.
    pub root: Hash,
}

/// The leaf hash of a row's canonical bytes.
pub fn leaf_hash(bytes: &[u8]) -> Hash {
    record_hash(bytes)
}

/// Checks that `proof` puts the leaf `leaf` at `index` in the tree of `size` whose root is
/// `root`.
pub fn verify_inclusion(
    proof: &[Hash],
    size: u64,
    root: Hash,
    index: u64,
    leaf: Hash,
) -> Result<(), tlog_tiles::Error> {
    check_record(&proof.to_vec(), size, root, index, leaf)
}

/// Checks that `proof` makes the tree of `old_size` with root `old_root` a prefix of the
/// tree of `size` with root `root`. Any tree extends the empty one; a tree extends one of
/// its own size only if their roots are the same.
pub fn verify_consistency(
    proof: &[Hash],
    size: u64,
    root: Hash,
    old_size: u64,
    old_root: Hash,
) -> Result<(), tlog_tiles::Error> {
    if old_size == 0 {
        return Ok(());
    }
    check_tree(&proof.to_vec(), size, root, old_size, old_root)
}
