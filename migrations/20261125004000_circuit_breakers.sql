-- One circuit breaker per payment provider, shared by every API and worker instance.
-- `failures` counts failures since `window_started_at` while closed; `opened_at` is when it
-- last opened; `probe_started_at` is when the single half-open probe was handed out.
CREATE TABLE circuit_breakers (
    provider          text PRIMARY KEY CHECK (provider <> ''),
    state             text NOT NULL DEFAULT 'closed'
                      CONSTRAINT circuit_breakers_state_check
                      CHECK (state IN ('closed', 'open', 'half_open')),
    failures          integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    window_started_at timestamptz,
    opened_at         timestamptz,
    probe_started_at  timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT circuit_breakers_open_has_opened_at
        CHECK (state = 'closed' OR opened_at IS NOT NULL),
    CONSTRAINT circuit_breakers_half_open_has_probe
        CHECK (state <> 'half_open' OR probe_started_at IS NOT NULL)
);
