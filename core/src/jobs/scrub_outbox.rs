//! After an LGPD erasure: delete the stored copies of the e-mails sent to the account's
//! addresses. The worker runs it because the worker owns `MAIL_OUTBOX_DIR` (the API may run
//! on another machine). The payload names the addresses only by digest, so the queue holds
//! no address of an erased account.

use serde::{Deserialize, Serialize};

use super::Job;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubOutbox {
    /// `mail::recipient_digest` of every address the account had.
    pub recipients: Vec<String>,
}

impl Job for ScrubOutbox {
    const NAME: &'static str = "scrub_outbox";
    const MAX_ATTEMPTS: i32 = 10;
}
