//! Jobs newest first, filtered by state, kind, age, the business objects they serve, or text.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::JobState;

/// Which jobs [`list`] answers.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub state: Option<JobState>,
    pub kind: Option<String>,
    /// Only jobs created at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only jobs that serve one of these objects.
    pub serving: Option<Serving>,
    /// Only jobs whose payload or last error contains this text (case-insensitive).
    pub text: Option<String>,
    pub limit: i64,
}

/// The objects a search looks for jobs of: jobs that name one of these orders or payments in
/// their [`Serves`](crate::Serves), or that carry one of these idempotency keys (a job that
/// names only some other object, such as a webhook event, is found by its key).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Serving {
    pub order_ids: Vec<Uuid>,
    pub payment_ids: Vec<Uuid>,
    /// `(kind, idempotency key)` pairs.
    pub keys: Vec<(String, String)>,
}

/// A job as a line of a list.
#[derive(Debug, Clone, Serialize)]
pub struct JobSummary {
    pub id: String,
    pub kind: String,
    pub state: String,
    pub status: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub created_at: Option<DateTime<Utc>>,
    pub run_at: DateTime<Utc>,
    pub done_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// The order the job serves, as its envelope names it.
    pub order_id: Option<Uuid>,
    /// The payment the job serves, as its envelope names it.
    pub payment_id: Option<Uuid>,
}

/// The jobs that match `filter`, newest first, at most `filter.limit`.
///
/// A search by what jobs serve uses the indexes on the metadata and on idempotency keys, so
/// it stays fast however many finished jobs the table holds; a text search reads payloads
/// newest first until it has `limit` matches.
pub async fn list(pool: &PgPool, filter: &ListFilter) -> Result<Vec<JobSummary>, sqlx::Error> {
    // Job ids are ULIDs, which sort by creation time: "created since" is a range on the key.
    let since_id = filter.since.map(|at| {
        let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
        ulid::Ulid::from_parts(millis, 0).to_string()
    });
    let pattern = filter.text.as_deref().map(like_pattern);
    let serving = filter.serving.as_ref();
    let text_ids = |ids: Option<&Vec<Uuid>>| -> Vec<String> {
        ids.map(|ids| ids.iter().map(Uuid::to_string).collect())
            .unwrap_or_default()
    };
    let orders = text_ids(serving.map(|s| &s.order_ids));
    let payments = text_ids(serving.map(|s| &s.payment_ids));
    let key_kinds: Vec<&str> = serving
        .map(|s| s.keys.iter().map(|(kind, _)| kind.as_str()).collect())
        .unwrap_or_default();
    let keys: Vec<&str> = serving
        .map(|s| s.keys.iter().map(|(_, key)| key.as_str()).collect())
        .unwrap_or_default();
    let rows = match serving {
        // Several index lookups, then the few rows they found, sorted: no scan of the table,
        // however old the order.
        Some(_) => {
            sqlx::query_as!(
                Row,
                r#"WITH served AS (
                       SELECT id FROM apalis.jobs
                       WHERE metadata ? 'order_id' AND metadata -> 'order_id' = ANY($6::text[])
                       UNION
                       SELECT id FROM apalis.jobs
                       WHERE metadata ? 'payment_id'
                         AND metadata -> 'payment_id' = ANY($7::text[])
                       UNION
                       SELECT j.id FROM apalis.jobs AS j
                       JOIN UNNEST($8::text[], $9::text[]) AS k(kind, key)
                         ON j.job_type = k.kind AND j.idempotency_key = k.key
                   )
                   SELECT j.id, j.job_type,
                          cart_queue.job_state(j.status, j.attempts, j.max_attempts, j.metadata)
                              AS "state!",
                          j.status, j.attempts, j.max_attempts, j.run_at, j.done_at,
                          j.last_result->>'Err' AS last_error,
                          j.metadata -> 'order_id' AS order_id,
                          j.metadata -> 'payment_id' AS payment_id
                   -- One primary-key lookup per job found. `OFFSET 0` keeps the planner
                   -- from flattening this into a join, which it may turn into a walk of the
                   -- whole key, newest first, to reach an old order's jobs (a second
                   -- instead of a millisecond with a million finished jobs).
                   FROM served CROSS JOIN LATERAL (
                       SELECT * FROM apalis.jobs WHERE apalis.jobs.id = served.id OFFSET 0
                   ) AS j
                   WHERE ($1::text IS NULL
                          OR cart_queue.job_state(j.status, j.attempts, j.max_attempts,
                                                  j.metadata) = $1)
                     AND ($2::text IS NULL OR j.job_type = $2)
                     AND ($3::text IS NULL OR j.id >= $3)
                     AND ($5::text IS NULL
                          OR convert_from(j.job, 'UTF8') ILIKE $5
                          OR j.last_result->>'Err' ILIKE $5)
                   ORDER BY j.id DESC
                   LIMIT $4"#,
                filter.state.map(JobState::as_str),
                filter.kind.as_deref(),
                since_id,
                filter.limit,
                pattern,
                &orders,
                &payments,
                &key_kinds as &[&str],
                &keys as &[&str],
            )
            .fetch_all(pool)
            .await?
        }
        None => {
            sqlx::query_as!(
                Row,
                r#"SELECT id, job_type,
                          cart_queue.job_state(status, attempts, max_attempts, metadata)
                              AS "state!",
                          status, attempts, max_attempts, run_at, done_at,
                          last_result->>'Err' AS last_error,
                          metadata -> 'order_id' AS order_id,
                          metadata -> 'payment_id' AS payment_id
                   FROM apalis.jobs
                   WHERE ($1::text IS NULL
                          OR cart_queue.job_state(status, attempts, max_attempts, metadata) = $1)
                     AND ($2::text IS NULL OR job_type = $2)
                     AND ($3::text IS NULL OR id >= $3)
                     AND ($5::text IS NULL
                          OR convert_from(job, 'UTF8') ILIKE $5
                          OR last_result->>'Err' ILIKE $5)
                   ORDER BY id DESC
                   LIMIT $4"#,
                filter.state.map(JobState::as_str),
                filter.kind.as_deref(),
                since_id,
                filter.limit,
                pattern,
            )
            .fetch_all(pool)
            .await?
        }
    };
    Ok(rows.into_iter().map(Row::into_summary).collect())
}

/// A row of either query of [`list`].
struct Row {
    id: String,
    job_type: String,
    state: String,
    status: String,
    attempts: i32,
    max_attempts: i32,
    run_at: DateTime<Utc>,
    done_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    order_id: Option<String>,
    payment_id: Option<String>,
}

impl Row {
    fn into_summary(self) -> JobSummary {
        let uuid = |raw: Option<String>| raw.and_then(|raw| raw.parse().ok());
        JobSummary {
            created_at: created_at(&self.id),
            id: self.id,
            kind: self.job_type,
            state: self.state,
            status: self.status,
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            run_at: self.run_at,
            done_at: self.done_at,
            last_error: self.last_error,
            order_id: uuid(self.order_id),
            payment_id: uuid(self.payment_id),
        }
    }
}

/// `text` as an `ILIKE` pattern that matches it anywhere, its own `%`, `_` and `\` taken
/// literally.
fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// When a job was created: the timestamp part of its ULID.
pub(super) fn created_at(id: &str) -> Option<DateTime<Utc>> {
    ulid::Ulid::from_string(id)
        .ok()
        .map(|ulid| DateTime::<Utc>::from(ulid.datetime()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ulid_tells_when_the_job_was_created() {
        let id = ulid::Ulid::from_parts(1_764_072_000_000, 7).to_string();
        let created = created_at(&id).unwrap();
        assert_eq!(created.to_rfc3339(), "2025-11-25T12:00:00+00:00");
    }

    #[test]
    fn search_text_is_taken_literally() {
        assert_eq!(like_pattern("CART-7F3K2Q"), "%CART-7F3K2Q%");
        assert_eq!(like_pattern("100%_off\\"), "%100\\%\\_off\\\\%");
    }
}

#[cfg(test)]
mod search_tests {
    use serde::{Deserialize, Serialize};
    use sqlx::PgPool;

    use super::*;
    use crate::{Encoded, Job, Origin, Serves};

    #[derive(Debug, Serialize, Deserialize)]
    struct ForOrder {
        order_id: Uuid,
        payment_id: Option<Uuid>,
        note: String,
    }

    impl Job for ForOrder {
        const NAME: &'static str = "test_for_order";
        const MAX_ATTEMPTS: i32 = 3;
        fn idempotency_key(&self) -> Option<String> {
            Some(format!("for-order:{}", self.note))
        }
        fn serves(&self) -> Serves {
            Serves {
                order_id: Some(self.order_id),
                payment_id: self.payment_id,
            }
        }
    }

    async fn enqueue(pool: &PgPool, job: &ForOrder) {
        let mut conn = pool.acquire().await.expect("connection");
        crate::enqueue(
            &mut conn,
            &Encoded::new(job, Origin::default()).expect("encoded"),
        )
        .await
        .expect("enqueued");
    }

    fn ids(jobs: &[JobSummary]) -> Vec<String> {
        jobs.iter().map(|j| j.id.clone()).collect()
    }

    #[sqlx::test(migrations = false)]
    async fn jobs_are_found_by_order_payment_key_and_text(pool: PgPool) {
        cart_migrations::migrate(&pool).await.expect("schema");
        let (order, other_order, payment) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let job = |order_id, payment_id, note: &str| ForOrder {
            order_id,
            payment_id,
            note: note.into(),
        };
        enqueue(&pool, &job(order, None, "direct")).await;
        enqueue(&pool, &job(other_order, Some(payment), "via-payment")).await;
        enqueue(&pool, &job(other_order, None, "keyed 100% Ünïcode")).await;
        enqueue(&pool, &job(other_order, None, "unrelated")).await;
        // Many jobs of nobody in particular, as a busy store leaves behind.
        let mut conn = pool.acquire().await.expect("connection");
        let noise: Vec<Encoded> = (0..300)
            .map(|_| Encoded::raw("test_noise", b"{}".to_vec(), 1, None))
            .collect();
        crate::enqueue_all(&mut conn, &noise).await.expect("noise");

        let search = |serving: Serving| ListFilter {
            serving: Some(serving),
            limit: 50,
            ..ListFilter::default()
        };
        let found = list(
            &pool,
            &search(Serving {
                order_ids: vec![order],
                payment_ids: vec![payment],
                keys: vec![(
                    "test_for_order".into(),
                    "for-order:keyed 100% Ünïcode".into(),
                )],
            }),
        )
        .await
        .expect("by order");
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found.iter().any(|j| j.order_id == Some(order)));
        assert!(found.iter().any(|j| j.payment_id == Some(payment)));
        let newest_first = {
            let mut sorted = ids(&found);
            sorted.sort();
            sorted.reverse();
            sorted
        };
        assert_eq!(ids(&found), newest_first);

        let nothing = list(&pool, &search(Serving::default()))
            .await
            .expect("empty");
        assert!(
            nothing.is_empty(),
            "an empty search finds nothing, not everything"
        );

        let by_text = |text: &str| ListFilter {
            text: Some(text.into()),
            limit: 50,
            ..ListFilter::default()
        };
        let found = list(&pool, &by_text("100% Ünïcode")).await.expect("text");
        assert_eq!(found.len(), 1);
        let found = list(&pool, &by_text("%")).await.expect("literal percent");
        assert_eq!(found.len(), 1, "% is matched literally");
        let found = list(&pool, &by_text("VIA-PAYMENT"))
            .await
            .expect("any case");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].payment_id, Some(payment));
    }
}
