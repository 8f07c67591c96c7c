//! The GGUF files the trainer takes and hands back, known by their header.

use std::path::Path;

use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::TrainerError;

/// A GGUF file starts with `GGUF` and a little-endian version (1 to 3 so far).
pub(super) fn is_gguf(header: &[u8; 8]) -> bool {
    let version = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    &header[..4] == b"GGUF" && (1..=3).contains(&version)
}

/// The model's size and SHA-256 (hex), once its header shows a GGUF file.
pub(super) async fn checked_model(path: &Path) -> Result<(u64, String), TrainerError> {
    let no_model = |reason| TrainerError::NoModel {
        path: path.to_owned(),
        reason,
    };
    let mut file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(no_model("no such file"))
        }
        Err(err) => return Err(TrainerError::io("open", path)(err)),
    };
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 20];
    let mut bytes = 0u64;
    let mut header = [0; 8];
    loop {
        let read = file
            .read(&mut buffer)
            .await
            .map_err(TrainerError::io("read", path))?;
        if read == 0 {
            break;
        }
        // The header is whole in the first read but for a file shorter than it.
        if bytes < 8 {
            let start = usize::try_from(bytes).unwrap_or(8);
            let take = (8 - start).min(read);
            header[start..start + take].copy_from_slice(&buffer[..take]);
        }
        hasher.update(&buffer[..read]);
        bytes += read as u64;
    }
    if bytes < 8 || !is_gguf(&header) {
        return Err(no_model("not a GGUF file"));
    }
    let digest = hasher.finalize();
    Ok((
        bytes,
        digest.iter().map(|byte| format!("{byte:02x}")).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gguf_header_is_the_magic_and_a_known_version() {
        let header = |magic: &[u8; 4], version: u32| {
            let mut header = [0; 8];
            header[..4].copy_from_slice(magic);
            header[4..].copy_from_slice(&version.to_le_bytes());
            header
        };
        assert!(is_gguf(&header(b"GGUF", 3)));
        assert!(is_gguf(&header(b"GGUF", 2)));
        assert!(!is_gguf(&header(b"GGUF", 0)));
        assert!(!is_gguf(&header(b"GGUF", 4)));
        assert!(!is_gguf(&header(b"GGML", 3)));
    }
}
