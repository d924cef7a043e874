//! What the queue got through lately, minute by minute and kind by kind: jobs finished and
//! attempts failed. The operator board draws its chart from it.

use chrono::{DateTime, Duration, Utc};
use sqlx::PgPool;

/// The last `minutes` whole minutes up to the current one (by the database's clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throughput {
    /// The start of the first minute of the window.
    pub from: DateTime<Utc>,
    /// How many minutes the window has, the current (partial) one included.
    pub minutes: i32,
    /// One row for each kind and minute that had anything; quiet minutes have none.
    pub rows: Vec<KindMinute>,
}

/// One kind in one minute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindMinute {
    pub kind: String,
    /// The start of the minute.
    pub minute: DateTime<Utc>,
    /// Jobs that finished successfully in it.
    pub done: i64,
    /// Attempts that failed in it (each retry that failed counts).
    pub failed: i64,
    /// Of those, the failures that ended their job for good.
    pub gave_up: i64,
}

impl Throughput {
    /// The index of `minute` in the window (0 is [`Throughput::from`]), if it falls in it.
    pub fn slot(&self, minute: DateTime<Utc>) -> Option<usize> {
        let offset = (minute - self.from).num_minutes();
        (0..i64::from(self.minutes))
            .contains(&offset)
            .then(|| usize::try_from(offset).ok())
            .flatten()
    }
}

/// Jobs done and attempts failed per kind and minute over the last `minutes` minutes (at
/// least one). Finished jobs are found through the prune ticker's index on `done_at`, failed
/// attempts through `job_failures`' index on `failed_at`, so the cost follows the last hour's
/// traffic, not the size of the queue table.
pub async fn throughput(pool: &PgPool, minutes: i32) -> Result<Throughput, sqlx::Error> {
    let minutes = minutes.max(1);
    let now: DateTime<Utc> = sqlx::query_scalar!(r#"SELECT date_trunc('minute', now()) AS "now!""#)
        .fetch_one(pool)
        .await?;
    let from = now - Duration::minutes(i64::from(minutes - 1));
    let rows = sqlx::query_as!(
        KindMinute,
        r#"WITH done AS (
               SELECT job_type AS kind, date_trunc('minute', done_at) AS minute, count(*) AS n
               FROM apalis.jobs
               -- The prune index's own predicate, so that the range scan on done_at uses it.
               WHERE status IN ('Done', 'Failed', 'Killed') AND status = 'Done'
                 AND done_at >= $1
               GROUP BY 1, 2
           ), failed AS (
               SELECT kind, date_trunc('minute', failed_at) AS minute, count(*) AS n,
                      count(*) FILTER (WHERE retry_at IS NULL) AS gave_up
               FROM job_failures
               WHERE failed_at >= $1
               GROUP BY 1, 2
           )
           SELECT coalesce(d.kind, f.kind) AS "kind!",
                  coalesce(d.minute, f.minute) AS "minute!",
                  coalesce(d.n, 0) AS "done!",
                  coalesce(f.n, 0) AS "failed!",
                  coalesce(f.gave_up, 0) AS "gave_up!"
           FROM done AS d FULL JOIN failed AS f ON f.kind = d.kind AND f.minute = d.minute
           ORDER BY 2, 1"#,
        from,
    )
    .fetch_all(pool)
    .await?;
    Ok(Throughput {
        from,
        minutes,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minute_falls_in_its_slot_of_the_window() {
        let from = DateTime::parse_from_rfc3339("2026-12-08T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let window = Throughput {
            from,
            minutes: 60,
            rows: vec![],
        };
        assert_eq!(window.slot(from), Some(0));
        assert_eq!(window.slot(from + Duration::minutes(59)), Some(59));
        assert_eq!(window.slot(from + Duration::minutes(60)), None);
        assert_eq!(window.slot(from - Duration::minutes(1)), None);
    }

    /// Times are set a second into a minute counted back from `anchor`, so a test that runs
    /// across a minute's end still sees each in the minute meant.
    async fn job(
        pool: &PgPool,
        anchor: DateTime<Utc>,
        kind: &str,
        status: &str,
        done_ago_mins: Option<i64>,
    ) -> String {
        let id = ulid::Ulid::new().to_string();
        let done_at = done_ago_mins.map(|m| anchor - Duration::minutes(m) + Duration::seconds(1));
        sqlx::query(
            "INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, done_at)
             VALUES ($1, $2, '{}'::bytea, $3, 1, 3, $4)",
        )
        .bind(&id)
        .bind(kind)
        .bind(status)
        .bind(done_at)
        .execute(pool)
        .await
        .unwrap();
        id
    }

    async fn failure(
        pool: &PgPool,
        anchor: DateTime<Utc>,
        job_id: &str,
        ago_mins: i64,
        gave_up: bool,
    ) {
        let failed_at = anchor - Duration::minutes(ago_mins) + Duration::seconds(1);
        sqlx::query(
            "INSERT INTO job_failures (job_id, kind, attempt, error, retry_at, failed_at)
             SELECT id, job_type, 1, 'boom', CASE WHEN $2 THEN NULL ELSE now() END, $3
             FROM apalis.jobs WHERE id = $1",
        )
        .bind(job_id)
        .bind(gave_up)
        .bind(failed_at)
        .execute(pool)
        .await
        .unwrap();
    }

    #[sqlx::test(migrations = false)]
    async fn counts_finished_jobs_and_failed_attempts_by_kind_and_minute(pool: PgPool) {
        cart_migrations::migrate(&pool).await.unwrap();
        let anchor: DateTime<Utc> = sqlx::query_scalar("SELECT date_trunc('minute', now())")
            .fetch_one(&pool)
            .await
            .unwrap();
        job(&pool, anchor, "mail", "Done", Some(0)).await;
        job(&pool, anchor, "mail", "Done", Some(0)).await;
        job(&pool, anchor, "mail", "Done", Some(5)).await;
        // Outside the window, or not finished: not counted.
        job(&pool, anchor, "mail", "Done", Some(90)).await;
        job(&pool, anchor, "mail", "Pending", None).await;
        let failing = job(&pool, anchor, "nfe", "Failed", Some(0)).await;
        failure(&pool, anchor, &failing, 2, false).await;
        failure(&pool, anchor, &failing, 0, true).await;
        failure(&pool, anchor, &failing, 61, false).await;

        let window = throughput(&pool, 60).await.unwrap();
        assert_eq!(window.minutes, 60);
        assert!(
            [anchor, anchor + Duration::minutes(1)]
                .contains(&(window.from + Duration::minutes(59))),
            "the window ends at the current minute"
        );
        let summary: Vec<(String, i64, i64, i64, i64)> = window
            .rows
            .iter()
            .map(|r| {
                let ago = (anchor - r.minute).num_minutes();
                (r.kind.clone(), ago, r.done, r.failed, r.gave_up)
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("mail".into(), 5, 1, 0, 0),
                ("nfe".into(), 2, 0, 1, 0),
                ("mail".into(), 0, 2, 0, 0),
                ("nfe".into(), 0, 0, 1, 1),
            ]
        );
    }
}
