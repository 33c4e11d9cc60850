//! What the demo's sessions are made of: projects, tasks, follow-up
//! prompts, models, code to read and edit, and command output.

/// A project: name, language, files.
pub(super) struct Project {
    pub(super) name: &'static str,
    pub(super) lang: Lang,
    pub(super) files: &'static [&'static str],
}

/// A project's language.
#[derive(Clone, Copy)]
pub(super) enum Lang {
    Rust,
    Ts,
    Py,
    Go,
}

/// The projects agents work on.
pub(super) const PROJECTS: &[Project] = &[
    Project {
        name: "acme-api",
        lang: Lang::Rust,
        files: &[
            "src/main.rs",
            "src/handlers/orders.rs",
            "src/handlers/customers.rs",
            "src/db.rs",
            "src/error.rs",
            "tests/orders.rs",
        ],
    },
    Project {
        name: "web-dashboard",
        lang: Lang::Ts,
        files: &[
            "src/App.tsx",
            "src/hooks/useTheme.ts",
            "src/components/Sidebar.tsx",
            "src/api/client.ts",
            "src/pages/Usage.tsx",
            "tests/theme.test.ts",
        ],
    },
    Project {
        name: "ingest-worker",
        lang: Lang::Py,
        files: &[
            "worker/main.py",
            "worker/importer.py",
            "worker/queue.py",
            "worker/settings.py",
            "tests/test_importer.py",
        ],
    },
    Project {
        name: "gateway",
        lang: Lang::Go,
        files: &[
            "cmd/gateway/main.go",
            "internal/ratelimit/limiter.go",
            "internal/proxy/proxy.go",
            "internal/auth/jwt.go",
            "internal/ratelimit/limiter_test.go",
        ],
    },
];

/// (project index, first prompt).
pub(super) const TASKS: &[(usize, &str)] = &[
    (0, "The /orders endpoint returns 500 when the cart is empty. Find out why and fix it, with a test."),
    (1, "Dark mode doesn't persist across reloads; store the choice in localStorage"),
    (2, "Port the CSV importer from pandas to polars and keep the tests green"),
    (3, "Add per-tenant rate limiting to the gateway (token bucket, configurable)"),
    (0, "Add cursor-based pagination to GET /customers"),
    (1, "Replace moment.js with date-fns everywhere"),
    (2, "Memory grows without bound when the queue is slow. Find the leak"),
    (3, "JWT validation accepts tokens with alg=none. Fix it and add a regression test"),
    (0, "Refunds over $10k need a second approver; implement the check"),
    (1, "The usage chart shows UTC dates; show them in the user's time zone"),
    (2, "Retry failed S3 uploads with exponential backoff and jitter"),
    (3, "The proxy drops the X-Request-Id header; propagate it upstream"),
    (0, "Invoice totals are off by a cent for some currencies. Use integer minor units"),
    (1, "Sidebar re-renders on every keystroke in the search box; fix the performance"),
    (2, "Make the importer idempotent: re-running a file must not duplicate rows"),
    (3, "Add a /healthz endpoint that checks the upstream pool"),
    (0, "Why is tests/orders.rs flaky on CI? Make it deterministic"),
    (1, "Add an API client retry for 429 responses, honoring Retry-After"),
    (2, "Type-check the worker with mypy --strict and fix what it finds"),
    (3, "Limiter state leaks for tenants that stopped sending; evict idle buckets"),
    (0, "Return 404 instead of 500 for unknown customer ids"),
    (1, "Write tests for useTheme"),
    (2, "The settings loader ignores INGEST_BATCH_SIZE; fix it"),
    (3, "go vet reports a copied lock in proxy.go; fix it"),
];

/// The prompts of the turns after the first.
pub(super) const FOLLOW_UPS: &[&str] = &[
    "Looks good. Also handle the case where the input is empty.",
    "Run the full test suite and fix anything that broke.",
    "Can you make the error message clearer for users?",
    "That broke the lint step, please fix it.",
    "Add a short note about this to the README.",
    "Now add a test for the failure path too.",
    "Simplify that: the helper function isn't needed.",
];

/// Models, by weight (a repeat is likelier).
pub(super) const MODELS: &[&str] = &[
    "claude-sonnet-4-5-20250929",
    "claude-sonnet-4-5-20250929",
    "claude-opus-4-1-20250805",
    "claude-haiku-4-5-20251001",
];

/// Lines of code in `lang`.
pub(super) fn code_lines(lang: Lang) -> &'static [&'static str] {
    match lang {
        Lang::Rust => RUST_CODE,
        Lang::Ts => TS_CODE,
        Lang::Py => PY_CODE,
        Lang::Go => GO_CODE,
    }
}

/// Lines of code in Rust.
const RUST_CODE: &[&str] = &[
        "use crate::db::Pool;",
        "use crate::error::ApiError;",
        "",
        "pub async fn create_order(pool: &Pool, cart: Cart) -> Result<Order, ApiError> {",
        "    let first = cart.items.first().ok_or(ApiError::EmptyCart)?;",
        "    let total: i64 = cart.items.iter().map(|i| i.price_cents * i64::from(i.qty)).sum();",
        "    let mut tx = pool.begin().await?;",
        "    let id = sqlx::query_scalar!(\"INSERT INTO orders (customer_id, total) VALUES ($1, $2) RETURNING id\", cart.customer_id, total)",
        "        .fetch_one(&mut *tx)",
        "        .await?;",
        "    tx.commit().await?;",
        "    tracing::info!(order = id, items = cart.items.len(), \"order created\");",
        "    Ok(Order { id, total, currency: first.currency })",
        "}",
        "",
        "#[derive(Debug, thiserror::Error)]",
        "pub enum ApiError {",
        "    #[error(\"the cart is empty\")]",
        "    EmptyCart,",
        "    #[error(transparent)]",
        "    Db(#[from] sqlx::Error),",
        "}",
];

/// Lines of code in TypeScript.
const TS_CODE: &[&str] = &[
        "import { useEffect, useState } from 'react';",
        "import { format } from 'date-fns';",
        "",
        "export function useTheme(): [Theme, (t: Theme) => void] {",
        "  const [theme, setTheme] = useState<Theme>(() => (localStorage.getItem('theme') as Theme) ?? 'light');",
        "  useEffect(() => {",
        "    document.documentElement.dataset.theme = theme;",
        "    localStorage.setItem('theme', theme);",
        "  }, [theme]);",
        "  return [theme, setTheme];",
        "}",
        "",
        "export async function fetchUsage(client: ApiClient, from: Date): Promise<UsageRow[]> {",
        "  const res = await client.get(`/usage?from=${format(from, 'yyyy-MM-dd')}`);",
        "  if (!res.ok) throw new ApiError(res.status, await res.text());",
        "  return (await res.json()) as UsageRow[];",
        "}",
];

/// Lines of code in Python.
const PY_CODE: &[&str] = &[
    "import logging",
    "from dataclasses import dataclass",
    "",
    "import polars as pl",
    "",
    "log = logging.getLogger(__name__)",
    "",
    "@dataclass(frozen=True)",
    "class ImportResult:",
    "    rows: int",
    "    skipped: int",
    "",
    "def import_csv(path: str, batch_size: int = 5000) -> ImportResult:",
    "    frame = pl.read_csv(path, infer_schema_length=1000)",
    "    frame = frame.unique(subset=[\"external_id\"], keep=\"first\")",
    "    skipped = 0",
    "    for batch in frame.iter_slices(batch_size):",
    "        skipped += upsert(batch)",
    "    log.info(\"imported %s rows from %s (%s skipped)\", frame.height, path, skipped)",
    "    return ImportResult(rows=frame.height, skipped=skipped)",
];

/// Lines of code in Go.
const GO_CODE: &[&str] = &[
    "package ratelimit",
    "",
    "import (",
    "\t\"sync\"",
    "\t\"time\"",
    ")",
    "",
    "type Limiter struct {",
    "\tmu      sync.Mutex",
    "\tbuckets map[string]*bucket",
    "\trate    float64",
    "\tburst   float64",
    "}",
    "",
    "func (l *Limiter) Allow(tenant string, now time.Time) bool {",
    "\tl.mu.Lock()",
    "\tdefer l.mu.Unlock()",
    "\tb, ok := l.buckets[tenant]",
    "\tif !ok {",
    "\t\tb = &bucket{tokens: l.burst, last: now}",
    "\t\tl.buckets[tenant] = b",
    "\t}",
    "\tb.refill(now, l.rate, l.burst)",
    "\treturn b.take()",
    "}",
];

/// (command, success output, failure output).
pub(super) fn commands(lang: Lang) -> &'static [(&'static str, &'static str, &'static str)] {
    match lang {
        Lang::Rust => &[
            ("cargo test --all-targets", "running 42 tests\n..........................................\ntest result: ok. 42 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.84s", "running 42 tests\n....................F.....................\nfailures:\n\n---- orders::empty_cart_is_rejected stdout ----\nthread 'orders::empty_cart_is_rejected' panicked at tests/orders.rs:57:5:\nassertion `left == right` failed\n  left: 500\n right: 422\n\ntest result: FAILED. 41 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out"),
            ("cargo clippy --all-targets -- -D warnings", "    Checking acme-api v0.4.2 (/home/dev/acme-api)\n    Finished `dev` profile [unoptimized + debuginfo] target(s) in 6.21s", "error: this `if` has identical blocks\n  --> src/handlers/orders.rs:88:9\n   |\n88 |         if cart.items.is_empty() {\n   |         ^^^^^^^^^^^^^^^^^^^^^^^^^^\n   = note: `-D clippy::if-same-then-else` implied by `-D warnings`"),
            ("git status --short", " M src/handlers/orders.rs\n M tests/orders.rs", "fatal: not a git repository"),
        ],
        Lang::Ts => &[
            ("npm test -- --run", " ✓ tests/theme.test.ts (4 tests) 31ms\n ✓ tests/client.test.ts (7 tests) 58ms\n\n Test Files  2 passed (2)\n      Tests  11 passed (11)\n   Duration  1.42s", " ❯ tests/theme.test.ts (4 tests | 1 failed) 35ms\n   × useTheme > restores the stored theme\n     → expected 'light' to be 'dark'\n\n Test Files  1 failed | 1 passed (2)\n      Tests  1 failed | 10 passed (11)"),
            ("npx tsc --noEmit", "", "src/api/client.ts(41,7): error TS2322: Type 'string | null' is not assignable to type 'string'.\n  Type 'null' is not assignable to type 'string'."),
            ("npm run lint", "> web-dashboard@1.9.0 lint\n> eslint src --max-warnings 0", "src/components/Sidebar.tsx\n  23:9  error  React Hook useEffect has a missing dependency: 'query'  react-hooks/exhaustive-deps\n\n✖ 1 problem (1 error, 0 warnings)"),
        ],
        Lang::Py => &[
            ("pytest -q", "........................                                    [100%]\n24 passed in 2.91s", ".......F................                                    [100%]\n=================================== FAILURES ===================================\n___________________________ test_import_is_idempotent __________________________\n    assert count_rows() == 3\nE   assert 6 == 3\n1 failed, 23 passed in 3.02s"),
            ("ruff check .", "All checks passed!", "worker/importer.py:14:5: F841 Local variable `frame` is assigned to but never used\nFound 1 error."),
            ("mypy --strict worker", "Success: no issues found in 6 source files", "worker/queue.py:31: error: Function is missing a return type annotation  [no-untyped-def]\nFound 1 error in 1 file (checked 6 source files)"),
        ],
        Lang::Go => &[
            ("go test ./...", "ok  \tgateway/internal/ratelimit\t0.412s\nok  \tgateway/internal/proxy\t0.188s\nok  \tgateway/internal/auth\t0.097s", "--- FAIL: TestLimiterEvictsIdle (0.00s)\n    limiter_test.go:48: buckets = 3, want 1\nFAIL\nFAIL\tgateway/internal/ratelimit\t0.031s"),
            ("go vet ./...", "", "# gateway/internal/proxy\ninternal/proxy/proxy.go:77:14: call of copyConfig copies lock value: gateway/internal/proxy.Config contains sync.Mutex"),
            ("git diff --stat", " internal/ratelimit/limiter.go      | 34 +++++++++++++++++++++++-----\n internal/ratelimit/limiter_test.go | 21 ++++++++++++++++\n 2 files changed, 49 insertions(+), 6 deletions(-)", "fatal: bad revision"),
        ],
    }
}
