//! The `LOG_LEVEL` filter, applied to events only: spans at `info` and above are always kept,
//! so that a line's ids are there whatever the level (a `warn` line inside a request still
//! carries its `request_id` when `LOG_LEVEL=warn` hides the `info` lines).
//!
//! A global filter rather than `Layer::with_filter`: with a per-layer filter, a span the
//! filter refuses leaves a mark that makes the next enabled event on that thread be dropped
//! (tracing-subscriber 0.3.23), which loses lines such as the API's access log.

use tracing::{
    Level, Metadata, Subscriber, level_filters::LevelFilter, span, subscriber::Interest,
};
use tracing_subscriber::{EnvFilter, Layer, layer::Context, registry::LookupSpan};

pub struct EventLevel(pub EnvFilter);

fn is_context_span(metadata: &Metadata<'_>) -> bool {
    metadata.is_span() && *metadata.level() <= Level::INFO
}

impl<S> Layer<S> for EventLevel
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if is_context_span(metadata) {
            Interest::always()
        } else {
            <EnvFilter as Layer<S>>::register_callsite(&self.0, metadata)
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        is_context_span(metadata) || <EnvFilter as Layer<S>>::enabled(&self.0, metadata, ctx)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        let events = <EnvFilter as Layer<S>>::max_level_hint(&self.0)?;
        Some(events.max(LevelFilter::INFO))
    }

    // The rest keeps span-scoped directives (`[request{request_id=…}]=debug`) working.
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        <EnvFilter as Layer<S>>::on_new_span(&self.0, attrs, id, ctx);
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        <EnvFilter as Layer<S>>::on_record(&self.0, id, values, ctx);
    }

    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        <EnvFilter as Layer<S>>::on_enter(&self.0, id, ctx);
    }

    fn on_exit(&self, id: &span::Id, ctx: Context<'_, S>) {
        <EnvFilter as Layer<S>>::on_exit(&self.0, id, ctx);
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        <EnvFilter as Layer<S>>::on_close(&self.0, id, ctx);
    }
}
