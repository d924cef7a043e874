//! The default mailer: each message becomes one JSON file in `MAIL_OUTBOX_DIR`
//! (default `var/outbox`), `{id, to, subject, text, html, tags, created_at}`.
//!
//! The file is named after the idempotency key (the job id), so a retried send rewrites the
//! same file instead of adding a second one. Writes are atomic: a temporary file in the
//! same directory is written and fsynced, then renamed over the final name, so a reader
//! never sees half a message.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{EmailMessage, Mailer};
use crate::http_client::ProviderError;

pub const DEFAULT_DIR: &str = "var/outbox";

/// One outbox file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// The idempotency key the message was sent with.
    pub id: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// `[kind]`, e.g. `["order_placed"]`.
    pub tags: Vec<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct OutboxMailer {
    dir: PathBuf,
}

impl OutboxMailer {
    /// Uses `dir`, creating it (and its parents) when missing.
    pub fn new(dir: impl AsRef<Path>) -> std::io::Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the message sent with `idempotency_key` is written.
    pub fn path_for(&self, idempotency_key: &str) -> PathBuf {
        self.dir
            .join(format!("{}.json", file_stem(idempotency_key)))
    }
}

/// A file name for any key: safe characters are kept, others become `_`, and when anything
/// had to change a hash of the original is appended so distinct keys never share a file.
fn file_stem(key: &str) -> String {
    let safe: String = key
        .chars()
        .take(120)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let safe = safe.trim_start_matches('.');
    if safe == key && !safe.is_empty() {
        safe.to_owned()
    } else {
        let digest = hex::encode(Sha256::digest(key.as_bytes()));
        format!(
            "{}{}{}",
            safe,
            if safe.is_empty() { "" } else { "-" },
            &digest[..16]
        )
    }
}

fn write_atomically(dir: &Path, target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let file_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{file_name}.{}.tmp", uuid::Uuid::new_v4()));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temp, target)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result?;
    // Persist the rename itself; directories cannot be opened for sync everywhere.
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[async_trait]
impl Mailer for OutboxMailer {
    async fn send(
        &self,
        message: &EmailMessage,
        idempotency_key: &str,
    ) -> Result<String, ProviderError> {
        if idempotency_key.is_empty() {
            return Err(ProviderError::Config(
                "outbox mailer needs an idempotency key".into(),
            ));
        }
        let entry = OutboxEntry {
            id: idempotency_key.to_owned(),
            to: message.to.clone(),
            subject: message.subject.clone(),
            text: message.text.clone(),
            html: message.html.clone(),
            tags: vec![message.tag.clone()],
            created_at: Utc::now(),
        };
        let bytes = serde_json::to_vec_pretty(&entry)
            .map_err(|e| ProviderError::Config(format!("outbox entry: {e}")))?;
        let dir = self.dir.clone();
        let target = self.path_for(idempotency_key);
        tokio::task::spawn_blocking(move || write_atomically(&dir, &target, &bytes))
            .await
            .map_err(|e| ProviderError::Unavailable(format!("outbox writer: {e}")))?
            .map_err(|e| ProviderError::Unavailable(format!("writing the outbox: {e}")))?;
        Ok(entry.id)
    }

    async fn forget_recipients(&self, recipients: &[String]) -> Result<u64, ProviderError> {
        let dir = self.dir.clone();
        let recipients: std::collections::HashSet<String> = recipients.iter().cloned().collect();
        tokio::task::spawn_blocking(move || delete_messages_to(&dir, &recipients))
            .await
            .map_err(|e| ProviderError::Unavailable(format!("outbox scrubber: {e}")))?
            .map_err(|e| ProviderError::Unavailable(format!("scrubbing the outbox: {e}")))
    }
}

/// Deletes every outbox file whose `to` hashes to one of `recipients`.
fn delete_messages_to(
    dir: &Path,
    recipients: &std::collections::HashSet<String>,
) -> std::io::Result<u64> {
    let mut deleted = 0;
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none_or(|ext| ext != "json") {
            continue;
        }
        // A file that vanished or is not an outbox entry is not ours to judge.
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let Ok(message) = serde_json::from_slice::<OutboxEntry>(&bytes) else {
            continue;
        };
        if recipients.contains(&super::recipient_digest(&message.to)) {
            match std::fs::remove_file(&path) {
                Ok(()) => deleted += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            Self(std::env::temp_dir().join(format!("cart-outbox-{}", uuid::Uuid::new_v4())))
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn message(subject: &str) -> EmailMessage {
        EmailMessage {
            to: "ana@example.com".into(),
            subject: subject.into(),
            text: "Recebemos o seu pedido.".into(),
            html: "<p>Recebemos o seu pedido.</p>".into(),
            tag: "order_placed".into(),
        }
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn forgetting_a_recipient_deletes_only_their_messages() {
        let temp = TempDir::new();
        let mailer = OutboxMailer::new(&temp.0).unwrap();
        mailer.send(&message("para Ana"), "job-1").await.unwrap();
        let other = EmailMessage {
            to: "bia@example.com".into(),
            ..message("para Bia")
        };
        mailer.send(&other, "job-2").await.unwrap();
        let deleted = mailer
            .forget_recipients(&[crate::mail::recipient_digest("ANA@example.com")])
            .await
            .unwrap();
        assert_eq!(deleted, 1);
        assert_eq!(files_in(mailer.dir()), vec!["job-2.json"]);
    }

    #[tokio::test]
    async fn a_message_becomes_one_json_file_named_after_the_key() {
        let temp = TempDir::new();
        let mailer = OutboxMailer::new(temp.0.join("nested/outbox")).unwrap();

        let id = mailer
            .send(&message("Pedido #1042 recebido"), "job-0197a1b2")
            .await
            .unwrap();
        assert_eq!(id, "job-0197a1b2");

        assert_eq!(files_in(mailer.dir()), vec!["job-0197a1b2.json"]);
        let raw = std::fs::read_to_string(mailer.path_for("job-0197a1b2")).unwrap();
        let json: serde_json::Value = serde_json::from_str(&raw).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 7, "{keys:?}");
        assert_eq!(json["id"], "job-0197a1b2");
        assert_eq!(json["to"], "ana@example.com");
        assert_eq!(json["subject"], "Pedido #1042 recebido");
        assert_eq!(json["text"], "Recebemos o seu pedido.");
        assert_eq!(json["html"], "<p>Recebemos o seu pedido.</p>");
        assert_eq!(json["tags"], serde_json::json!(["order_placed"]));
        let created: DateTime<Utc> = json["created_at"].as_str().unwrap().parse().unwrap();
        assert!((Utc::now() - created).num_seconds().abs() < 60);
    }

    #[tokio::test]
    async fn a_retried_send_overwrites_the_same_file() {
        let temp = TempDir::new();
        let mailer = OutboxMailer::new(&temp.0).unwrap();

        mailer.send(&message("first"), "job-7").await.unwrap();
        mailer.send(&message("second"), "job-7").await.unwrap();
        mailer.send(&message("other"), "job-8").await.unwrap();

        assert_eq!(files_in(&temp.0), vec!["job-7.json", "job-8.json"]);
        let entry: OutboxEntry =
            serde_json::from_slice(&std::fs::read(mailer.path_for("job-7")).unwrap()).unwrap();
        assert_eq!(entry.subject, "second");
    }

    #[tokio::test]
    async fn concurrent_sends_leave_no_temporary_files() {
        let temp = TempDir::new();
        let mailer = OutboxMailer::new(&temp.0).unwrap();
        let sends = (0..20).map(|i| {
            let mailer = mailer.clone();
            async move {
                let key = format!("job-{}", i % 4);
                mailer.send(&message(&format!("m{i}")), &key).await
            }
        });
        for result in futures::future::join_all(sends).await {
            result.unwrap();
        }
        assert_eq!(
            files_in(&temp.0),
            vec!["job-0.json", "job-1.json", "job-2.json", "job-3.json"]
        );
    }

    #[tokio::test]
    async fn unsafe_keys_cannot_escape_the_directory_or_collide() {
        let temp = TempDir::new();
        let mailer = OutboxMailer::new(&temp.0).unwrap();

        mailer
            .send(&message("a"), "../../etc/passwd")
            .await
            .unwrap();
        mailer.send(&message("b"), "a/b").await.unwrap();
        mailer.send(&message("c"), "a_b").await.unwrap();

        let files = files_in(&temp.0);
        assert_eq!(files.len(), 3, "{files:?}");
        assert!(files.contains(&"a_b.json".to_owned()));
        for path in [mailer.path_for("../../etc/passwd"), mailer.path_for("a/b")] {
            assert_eq!(path.parent().unwrap(), temp.0.as_path());
            assert!(path.exists());
        }
        let entry: OutboxEntry =
            serde_json::from_slice(&std::fs::read(mailer.path_for("../../etc/passwd")).unwrap())
                .unwrap();
        assert_eq!(entry.id, "../../etc/passwd");
    }

    #[tokio::test]
    async fn an_empty_key_is_refused() {
        let temp = TempDir::new();
        let mailer = OutboxMailer::new(&temp.0).unwrap();
        let err = mailer.send(&message("x"), "").await.unwrap_err();
        assert!(err.is_permanent());
        assert!(files_in(&temp.0).is_empty());
    }
}
