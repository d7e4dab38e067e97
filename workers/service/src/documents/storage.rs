//! Where document bytes live: content-addressed by SHA-256 behind a small
//! interface, with the local filesystem as the default. Names given by users
//! never reach a path: only the hex digest does. Blobs are stored gzip-compressed
//! (the seed: attachments "sotto forma di file compressi"); the digest is of
//! the original bytes.

use std::io;
use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use sha2::{Digest, Sha256};

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub trait BlobStore: Send + Sync {
    /// Stores the bytes (idempotently) and returns their SHA-256 in hex.
    fn put(&self, bytes: Vec<u8>) -> BoxFuture<'_, io::Result<String>>;
    /// The bytes with this digest, or `NotFound`.
    fn get(&self, sha256: &str) -> BoxFuture<'_, io::Result<Vec<u8>>>;
}

/// `<root>/<first two hex digits>/<digest>.gz`.
pub struct LocalBlobStore {
    root: PathBuf,
}

impl LocalBlobStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path_of(&self, sha256: &str) -> io::Result<PathBuf> {
        let is_digest = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
        if !is_digest {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a SHA-256 digest",
            ));
        }
        Ok(self.root.join(&sha256[..2]).join(format!("{sha256}.gz")))
    }
}

fn compress(bytes: &[u8]) -> io::Result<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes)?;
    encoder.finish()
}

fn decompress(compressed: &[u8]) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(compressed).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// CPU work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(io::Error::other)?
}

async fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    // Readers see the whole file or none; the same content written twice at
    // once lands identically.
    let temporary = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4()));
    tokio::fs::write(&temporary, bytes).await?;
    let file = tokio::fs::File::open(&temporary).await?;
    file.sync_all().await?;
    tokio::fs::rename(&temporary, path).await
}

impl BlobStore for LocalBlobStore {
    fn put(&self, bytes: Vec<u8>) -> BoxFuture<'_, io::Result<String>> {
        Box::pin(async move {
            let digest = sha256_hex(&bytes);
            let path = self.path_of(&digest)?;
            if tokio::fs::try_exists(&path).await? {
                return Ok(digest);
            }
            let compressed = blocking(move || compress(&bytes)).await?;
            write_atomically(&path, &compressed).await?;
            Ok(digest)
        })
    }

    fn get(&self, sha256: &str) -> BoxFuture<'_, io::Result<Vec<u8>>> {
        let path = self.path_of(sha256);
        let expected = sha256.to_owned();
        Box::pin(async move {
            let compressed = tokio::fs::read(path?).await?;
            let bytes = blocking(move || decompress(&compressed)).await?;
            // A damaged file is an error, never wrong content served.
            if sha256_hex(&bytes) != expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "stored blob does not match its digest",
                ));
            }
            Ok(bytes)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn the_same_content_is_stored_once_under_its_digest() {
        let root = std::env::temp_dir().join(format!("sportello-blobs-{}", uuid::Uuid::new_v4()));
        let store = LocalBlobStore::new(&root);
        let a = store.put(b"%PDF-1.7 one".to_vec()).await.unwrap();
        let b = store.put(b"%PDF-1.7 one".to_vec()).await.unwrap();
        assert_eq!(a, b);
        assert_eq!(store.get(&a).await.unwrap(), b"%PDF-1.7 one");
        let on_disk = std::fs::read(root.join(&a[..2]).join(format!("{a}.gz"))).unwrap();
        assert_eq!(&on_disk[..2], &[0x1f, 0x8b], "stored gzip-compressed");
        assert!(store.get("../../etc/passwd").await.is_err());
        std::fs::remove_dir_all(root).unwrap();
    }
}
