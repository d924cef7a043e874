//! `jobs enqueue KIND --payload JSON`: enqueues a job by hand (re-sending an e-mail, running
//! a maintenance job now). The payload must decode into the kind's type, as the handler
//! would decode it.

use cart_queue::{Encoded, Envelope, Origin};
use serde_json::{Value, json};

use super::{CliError, Ctx, audit, output};

#[derive(Debug, clap::Args)]
pub struct Opts {
    /// The job kind (see `jobs stats` for the known ones).
    pub kind: String,
    /// The job's payload as JSON, e.g. '{"tick": "2026-11-25T12:00:00Z"}'.
    #[arg(long)]
    pub payload: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(opts: Opts, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
    let actor = ctx.actor()?;
    let kind = ctx.registry.kind(&opts.kind).ok_or_else(|| {
        CliError::Invalid(format!(
            "unknown job kind {:?}; known kinds: {}",
            opts.kind,
            ctx.registry.names().join(", ")
        ))
    })?;
    let payload: Value = serde_json::from_str(&opts.payload)
        .map_err(|e| CliError::Invalid(format!("--payload is not valid JSON: {e}")))?;
    let checked = kind.check_payload(&payload).map_err(|e| {
        CliError::Invalid(format!("--payload does not fit a {} job: {e}", kind.name))
    })?;
    let request_id = format!("cli-{}", uuid::Uuid::new_v4());
    let envelope = serde_json::to_vec(&Envelope {
        origin: Origin {
            request_id: Some(request_id.clone()),
            traceparent: None,
        },
        serves: checked.serves,
        payload: &payload,
    })
    .map_err(anyhow::Error::from)?;
    let key = checked.idempotency_key;
    let job =
        Encoded::raw(kind.name, envelope, kind.max_attempts, key.clone()).serving(checked.serves);
    let mut tx = ctx.pool.begin().await?;
    let Some(id) = cart_queue::enqueue(&mut tx, &job)
        .await
        .map_err(anyhow::Error::from)?
    else {
        return Err(CliError::NotAllowed(format!(
            "a {} job with idempotency key {:?} already exists; nothing was enqueued",
            kind.name,
            key.unwrap_or_default()
        )));
    };
    audit::record(
        &mut tx,
        &actor,
        "jobs.enqueue",
        std::slice::from_ref(&id),
        json!({ "kind": kind.name, "payload": payload, "request_id": request_id }),
    )
    .await?;
    tx.commit().await?;
    if opts.json {
        return output::json(
            ctx,
            &json!({ "id": id, "kind": kind.name, "request_id": request_id }),
        );
    }
    ctx.say(format!("enqueued {} job {id}", kind.name))
}
