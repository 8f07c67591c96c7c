//! The Merkle tree as tiles: against the RFC 6962 / RFC 9162 test vectors that
//! transparency-dev publishes (`tests/fixtures/rfc6962_vectors.json` names the files and
//! commit) — the roots of every size, the inclusion and consistency proofs — and across tile
//! boundaries, grown in batches of any size. Proofs are made from tiles as the integrator
//! stores them and checked as the offline verifier checks them.

use std::collections::HashMap;

use casebook_projections::tlog::tree::{self, NodeHash, TileKey, Tiles, TreeError};
use serde::Deserialize;

#[derive(Deserialize)]
struct Vectors {
    leaves: Vec<String>,
    roots: Vec<Root>,
    leaf_hashes: Vec<String>,
    inclusion: Vec<InclusionVector>,
    consistency: Vec<ConsistencyVector>,
}

#[derive(Deserialize)]
struct Root {
    size: u64,
    hash: String,
}

#[derive(Deserialize)]
struct InclusionVector {
    index: u64,
    size: u64,
    proof: Vec<String>,
}

#[derive(Deserialize)]
struct ConsistencyVector {
    size1: u64,
    size2: u64,
    proof: Vec<String>,
}

fn vectors() -> Vectors {
    serde_json::from_str(include_str!("fixtures/rfc6962_vectors.json")).expect("the vectors parse")
}

fn hash(hex: &str) -> NodeHash {
    NodeHash(hex::decode(hex).unwrap().try_into().unwrap())
}

fn hashes(hexes: &[String]) -> Vec<NodeHash> {
    hexes.iter().map(|hex| hash(hex)).collect()
}

type Stored = HashMap<TileKey, Vec<u8>>;

/// The tiles of `leaves` appended in batches ending at each of `ends`, each append given
/// only the tiles [`Tiles::read_by_append`] names; and the root after each batch.
fn grown(leaves: &[NodeHash], ends: &[u64]) -> (Stored, Vec<NodeHash>) {
    let mut stored = Stored::new();
    let mut roots = Vec::new();
    let mut size = 0;
    for &end in ends {
        let mut tiles = Tiles::default();
        for key in Tiles::read_by_append(size, end) {
            if let Some(data) = stored.get(&key) {
                tiles.insert(key, data.clone());
            }
        }
        let appended = tiles
            .append(size, &leaves[size as usize..end as usize])
            .expect("the tiles an append reads");
        stored.extend(appended.tiles);
        roots.push(appended.root);
        size = end;
    }
    (stored, roots)
}

/// The vectors' leaves appended one at a time as rows arrive, and the root of every size.
fn tree_of(leaves: &[NodeHash]) -> (Stored, Vec<NodeHash>) {
    let ends: Vec<u64> = (1..=leaves.len() as u64).collect();
    let (stored, roots) = grown(leaves, &ends);
    (stored, [vec![tree::EMPTY_ROOT], roots].concat())
}

/// Answers `operation` from `stored`, fetching the tiles it asks for.
fn from_tiles<T>(stored: &Stored, operation: impl Fn(&Tiles) -> Result<T, TreeError>) -> T {
    let mut tiles = Tiles::default();
    loop {
        match operation(&tiles) {
            Err(TreeError::Missing(_)) => {
                for key in tiles.missing() {
                    tiles.insert(key, stored[&key].clone());
                }
            }
            answer => return answer.unwrap(),
        }
    }
}

fn tree_root(stored: &Stored, size: u64) -> NodeHash {
    from_tiles(stored, |tiles| tiles.root(size))
}

fn leaf_hashes(vectors: &Vectors) -> Vec<NodeHash> {
    vectors
        .leaves
        .iter()
        .map(|leaf| tree::leaf_hash(&hex::decode(leaf).unwrap()))
        .collect()
}

#[test]
fn leaves_hash_with_the_rfc_domain_separation() {
    let vectors = vectors();
    assert_eq!(leaf_hashes(&vectors), hashes(&vectors.leaf_hashes));
}

#[test]
fn every_size_has_the_published_root_whether_grown_or_read_back() {
    let vectors = vectors();
    let (stored, grown_roots) = tree_of(&leaf_hashes(&vectors));
    assert_eq!(vectors.roots.len(), 9, "sizes 0 to 8");
    for root in &vectors.roots {
        assert_eq!(
            grown_roots[root.size as usize],
            hash(&root.hash),
            "size {}",
            root.size
        );
        assert_eq!(
            tree_root(&stored, root.size),
            hash(&root.hash),
            "size {}",
            root.size
        );
    }
}

#[test]
fn inclusion_proofs_are_the_published_ones_and_verify() {
    let vectors = vectors();
    let leaves = leaf_hashes(&vectors);
    let (stored, roots) = tree_of(&leaves);
    assert!(!vectors.inclusion.is_empty());
    for vector in &vectors.inclusion {
        let published = hashes(&vector.proof);
        let made = from_tiles(&stored, |tiles| {
            tiles.inclusion_proof(vector.size, vector.index)
        });
        assert_eq!(made, published, "leaf {} of {}", vector.index, vector.size);
        let root = roots[vector.size as usize];
        let leaf = leaves[vector.index as usize];
        tree::verify_inclusion(&published, vector.size, root, vector.index, leaf).unwrap();
        let other = leaves[(vector.index as usize + 1) % leaves.len()];
        assert!(
            tree::verify_inclusion(&published, vector.size, root, vector.index, other).is_err()
        );
    }
}

#[test]
fn consistency_proofs_are_the_published_ones_and_verify() {
    let vectors = vectors();
    let (stored, roots) = tree_of(&leaf_hashes(&vectors));
    assert!(!vectors.consistency.is_empty());
    for vector in &vectors.consistency {
        let published = hashes(&vector.proof);
        let made = from_tiles(&stored, |tiles| {
            tiles.consistency_proof(vector.size2, vector.size1)
        });
        assert_eq!(made, published, "{} to {}", vector.size1, vector.size2);
        let (old, new) = (roots[vector.size1 as usize], roots[vector.size2 as usize]);
        tree::verify_consistency(&published, vector.size2, new, vector.size1, old).unwrap();
        if vector.size1 != vector.size2 {
            let forked = roots[vector.size1 as usize - 1];
            assert!(
                tree::verify_consistency(&published, vector.size2, new, vector.size1, forked)
                    .is_err()
            );
        }
    }
}

fn rows(count: u64) -> Vec<NodeHash> {
    (0..count)
        .map(|n| tree::leaf_hash(format!("row {n}").as_bytes()))
        .collect()
}

#[test]
fn appends_in_any_batches_give_the_root_of_all_leaves_at_once() {
    let leaves = rows(70_000);
    let (_, whole) = grown(&leaves, &[70_000]);
    let (_, batched) = grown(&leaves, &[1, 255, 256, 257, 65_535, 65_536, 65_537, 70_000]);
    assert_eq!(batched.last(), whole.last());
}

#[test]
fn proofs_from_stored_tiles_verify_against_the_roots_of_earlier_sizes() {
    let leaves = rows(66_000);
    let ends = [3, 256, 1000, 65_537, 66_000];
    let (stored, roots) = grown(&leaves, &ends);
    let (size, root) = (66_000, roots[4]);
    for index in [0, 255, 256, 999, 65_536, 65_999] {
        let proof = from_tiles(&stored, |tiles| tiles.inclusion_proof(size, index));
        let leaf = leaves[index as usize];
        tree::verify_inclusion(&proof, size, root, index, leaf).unwrap();
        let neighbour = leaves[index as usize ^ 1];
        assert!(tree::verify_inclusion(&proof, size, root, index, neighbour).is_err());
    }
    for (&old_size, &old_root) in ends.iter().zip(&roots) {
        let proof = from_tiles(&stored, |tiles| tiles.consistency_proof(size, old_size));
        tree::verify_consistency(&proof, size, root, old_size, old_root).unwrap();
        assert_eq!(tree_root(&stored, old_size), old_root);
    }
    let proof = from_tiles(&stored, |tiles| tiles.consistency_proof(size, 1000));
    assert!(tree::verify_consistency(&proof, size, root, 1000, roots[0]).is_err());
}
