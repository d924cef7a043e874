//! The request id that follows one piece of work through the API, its jobs and every
//! outbound call. The API sets it per request, the worker per job (from the job payload).

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Runs `fut` with `id` as the current request id.
pub async fn scope<F: std::future::Future>(id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

/// The current request id, when running inside [`scope`].
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// A client-supplied id is kept only when it is short and plainly printable.
pub fn is_sane(candidate: &str) -> bool {
    // The same rule as for the ids a job carries into its logs and calls.
    cart_queue::is_usable_request_id(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scope_sets_and_clears_the_id() {
        assert_eq!(current(), None);
        let seen = scope("req-1".into(), async { current() }).await;
        assert_eq!(seen.as_deref(), Some("req-1"));
    }

    #[test]
    fn only_sane_ids_are_accepted() {
        assert!(is_sane("0b4c9d1e-2f3a-4b5c-8d7e-6f5a4b3c2d1e"));
        assert!(!is_sane(""));
        assert!(!is_sane("has space"));
        assert!(!is_sane(&"a".repeat(129)));
        assert!(!is_sane("inject\r\nheader"));
    }
}
