//! User code, run safely: a pool of QuickJS runtimes, each on its own thread, that run
//! one script at a time under limits.
//!
//! - **Isolation**: code runs in a context (its own globals) that belongs to one
//!   scope — an endpoint — so nothing one scope's code leaves behind (a global, a
//!   changed prototype) is ever seen by another's. A worker keeps the declared code of
//!   its recent scopes, so a run of warm code costs a call, not a context (building a
//!   context with the language's built-ins takes ~180 µs on the CI machine).
//!   The runtime (the heap and its limits) is what is pooled.
//! - **Limits** ([`Limits`]): heap memory, wall time (the engine's interrupt hook stops
//!   a loop that never yields), stack depth, code and output size. A run that breaks
//!   one ends with a [`ScriptError`] naming the limit; the worker goes on serving.
//! - **Nothing to reach out with**: the context has the language's built-ins only (no
//!   `require`, modules, file, network, timers or `setTimeout`), and values cross the
//!   boundary as JSON text.
//!
//! [`transform`] is the transformation contract on top: a webhook in, a webhook out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rquickjs::context::EvalOptions;
use rquickjs::{CatchResultExt as _, CaughtError, Context, Ctx, Function, Persistent, Runtime, Value};
use tokio::sync::{mpsc, oneshot};

pub mod metrics;
pub mod transform;

/// The most characters a script may have (Svix's limit).
pub const MAX_CODE_CHARS: usize = 51_200;
/// The fewest (Svix's limit: less cannot declare a handler).
pub const MIN_CODE_CHARS: usize = 10;
/// The name the code is known by in error positions.
const FILE_NAME: &str = "transformation.js";

/// What one run may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Heap bytes the runtime may hold during a run (its input included).
    pub memory_bytes: usize,
    /// Wall time of one run, interrupted when it runs out.
    pub time: Duration,
    /// Bytes of native stack the script may use (deep recursion ends here).
    pub stack_bytes: usize,
    /// The longest result (as JSON text) a run may return.
    pub max_output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 16 * 1024 * 1024,
            time: Duration::from_millis(50),
            stack_bytes: 256 * 1024,
            max_output_bytes: 1024 * 1024,
        }
    }
}

/// Why a run gave no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    /// The code threw (or did not parse): the message and where.
    #[error("{message}{}", at.map(|(l, c)| format!(" (line {l}, column {c})")).unwrap_or_default())]
    Thrown {
        message: String,
        /// Line and column in the code, both from 1, when the engine said.
        at: Option<(u32, u32)>,
    },
    #[error("the script ran longer than {0:?} and was stopped")]
    TimedOut(Duration),
    #[error("the script needed more than {} MiB of memory", .0 / (1024 * 1024))]
    OutOfMemory(usize),
    #[error("the script recursed too deep (stack limit {} KiB)", .0 / 1024)]
    StackOverflow(usize),
    /// The code ran but its result is unusable.
    #[error("{0}")]
    BadResult(String),
    /// The code is refused before it runs (size).
    #[error("{0}")]
    BadCode(String),
    /// No worker could take the run (the pool was shut down).
    #[error("the sandbox is not running")]
    Unavailable,
}

impl ScriptError {
    /// A short name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Thrown { .. } => "thrown",
            Self::TimedOut(_) => "timeout",
            Self::OutOfMemory(_) => "memory",
            Self::StackOverflow(_) => "stack",
            Self::BadResult(_) => "bad_result",
            Self::BadCode(_) => "bad_code",
            Self::Unavailable => "unavailable",
        }
    }
}

/// Checks the code's size; the pool refuses code that fails this before running it.
pub fn check_size(code: &str) -> Result<(), ScriptError> {
    let chars = code.chars().count();
    if chars < MIN_CODE_CHARS {
        return Err(ScriptError::BadCode(format!(
            "the code must be at least {MIN_CODE_CHARS} characters"
        )));
    }
    if chars > MAX_CODE_CHARS {
        return Err(ScriptError::BadCode(format!(
            "the code must be at most {MAX_CODE_CHARS} characters (it has {chars})"
        )));
    }
    Ok(())
}

enum Task {
    /// Declares the code, calls `entry` with the JSON input and answers the result as
    /// JSON text. With a `scope`, the declared code is kept for the next run of the
    /// same scope and code; without one, the run's context is dropped after it.
    Call {
        scope: Option<String>,
        code: Arc<str>,
        entry: &'static str,
        input: String,
    },
    /// Parses the code without running any of it.
    Check { code: Arc<str> },
}

struct Job {
    task: Task,
    reply: oneshot::Sender<Result<String, ScriptError>>,
}

/// The pool. Cloning shares it; the workers stop when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Sandbox {
    jobs: mpsc::Sender<Job>,
    limits: Limits,
    metrics: Arc<metrics::TransformMetrics>,
}

impl Sandbox {
    /// Starts `workers` threads (at least one), each with its own runtime.
    pub fn start(limits: Limits, workers: usize) -> std::io::Result<Self> {
        let workers = workers.max(1);
        let (tx, rx) = mpsc::channel::<Job>(workers * 64);
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..workers {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("hookd-sandbox-{n}"))
                // Room for the script's own stack limit plus the engine's native frames.
                .stack_size(limits.stack_bytes + 4 * 1024 * 1024)
                .spawn(move || worker(limits, &rx))?;
        }
        Ok(Self {
            jobs: tx,
            limits,
            metrics: Arc::default(),
        })
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Transformation runs, for `/metrics`.
    pub fn metrics(&self) -> &metrics::TransformMetrics {
        &self.metrics
    }

    /// Runs `code`, then calls its global function `entry` with `input`, and answers
    /// what it returned.
    ///
    /// `scope` names whose code this is (an endpoint): a worker keeps the declared code
    /// of recent scopes, so the next run of the same scope and code skips building a
    /// context and declaring the code. Globals that code leaves behind may then be seen
    /// by its own next run — never by another scope's. `None` runs in a context of its
    /// own, dropped after the run.
    pub async fn call(
        &self,
        scope: Option<&str>,
        code: &str,
        entry: &'static str,
        input: &impl serde::Serialize,
    ) -> Result<serde_json::Value, ScriptError> {
        check_size(code)?;
        let input = serde_json::to_string(input).map_err(|e| ScriptError::BadResult(e.to_string()))?;
        let out = self
            .submit(Task::Call {
                scope: scope.map(str::to_owned),
                code: Arc::from(code),
                entry,
                input,
            })
            .await?;
        serde_json::from_str(&out).map_err(|e| ScriptError::BadResult(format!("the result is not JSON: {e}")))
    }

    /// Whether `code` parses, without running any of it.
    pub async fn check(&self, code: &str) -> Result<(), ScriptError> {
        check_size(code)?;
        self.submit(Task::Check {
            code: Arc::from(code),
        })
        .await
        .map(drop)
    }

    async fn submit(&self, task: Task) -> Result<String, ScriptError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { task, reply })
            .await
            .map_err(|_| ScriptError::Unavailable)?;
        answer.await.map_err(|_| ScriptError::Unavailable)?
    }
}

pub static PROBE_NS: AtomicU64 = AtomicU64::new(0);
pub static PROBE_N: AtomicU64 = AtomicU64::new(0);
/// One worker: a runtime that serves jobs until the pool is dropped.
fn worker(limits: Limits, jobs: &Mutex<mpsc::Receiver<Job>>) {
    let mut engine = match Engine::new(limits) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "could not start a sandbox runtime");
            return;
        }
    };
    loop {
        let job = {
            let mut rx = jobs.lock().unwrap_or_else(|p| p.into_inner());
            // Waking a parked thread costs ~40 µs on a virtual machine, more than the
            // run itself: the worker holding the queue looks for the next job for a
            // moment before it parks (docs/benchmarks.md: 133 → 95 µs a warm run; no
            // change in delivery throughput or CPU under load).
            let spin = Instant::now();
            loop {
                match rx.try_recv() {
                    Ok(j) => break Some(j),
                    Err(mpsc::error::TryRecvError::Disconnected) => break None,
                    Err(mpsc::error::TryRecvError::Empty) if spin.elapsed() < SPIN => std::hint::spin_loop(),
                    Err(mpsc::error::TryRecvError::Empty) => break rx.blocking_recv(),
                }
            }
        };
        let Some(job) = job else { return };
        let t0 = Instant::now();
        let mut result = engine.run(&job.task);
        PROBE_NS.fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        PROBE_N.fetch_add(1, Ordering::Relaxed);
        if matches!(result, Err(ScriptError::OutOfMemory(_))) {
            // The heap is shared by the kept contexts: start afresh, and try once more
            // so a run is refused for its own use only.
            match Engine::new(limits) {
                Ok(e) => engine = e,
                Err(e) => {
                    tracing::error!(error = %e, "could not restart a sandbox runtime");
                    let _ = job.reply.send(result);
                    return;
                }
            }
            result = engine.run(&job.task);
        }
        // The caller may have stopped waiting; nothing to do then.
        let _ = job.reply.send(result);
    }
}

/// Declared code kept for its scope's next run.
struct Kept {
    scope: String,
    code: Arc<str>,
    context: Context,
    entry: &'static str,
    handler: Persistent<Function<'static>>,
    last_used: u64,
}

/// How long an idle worker looks for the next job before it parks.
const SPIN: Duration = Duration::from_micros(50);
/// Scopes a worker keeps declared code for.
const KEPT_CONTEXTS: usize = 32;
/// Runs between full garbage collections (reference counting frees most at once; this
/// collects cycles).
const GC_EVERY: u64 = 64;

/// A runtime with its limits, its clock and the contexts it keeps.
struct Engine {
    // Dropped before the runtime they live in.
    kept: Vec<Kept>,
    runtime: Runtime,
    limits: Limits,
    /// When the current run must stop, in nanoseconds after `epoch`; 0 = no run.
    deadline: Arc<AtomicU64>,
    epoch: Instant,
    runs: u64,
}

impl Engine {
    fn new(limits: Limits) -> rquickjs::Result<Self> {
        let runtime = Runtime::new()?;
        runtime.set_memory_limit(limits.memory_bytes);
        runtime.set_max_stack_size(limits.stack_bytes);
        let deadline = Arc::new(AtomicU64::new(0));
        let epoch = Instant::now();
        let watched = Arc::clone(&deadline);
        runtime.set_interrupt_handler(Some(Box::new(move || {
            let until = watched.load(Ordering::Relaxed);
            until != 0 && epoch.elapsed().as_nanos() as u64 >= until
        })));
        Ok(Self {
            kept: Vec::new(),
            runtime,
            limits,
            deadline,
            epoch,
            runs: 0,
        })
    }

    fn run(&mut self, task: &Task) -> Result<String, ScriptError> {
        let until = self.epoch.elapsed() + self.limits.time;
        self.deadline.store(until.as_nanos() as u64, Ordering::Relaxed);
        let result = match task {
            Task::Check { code } => self.check(code),
            Task::Call {
                scope,
                code,
                entry,
                input,
            } => self.call(scope.as_deref(), code, entry, input),
        };
        self.deadline.store(0, Ordering::Relaxed);
        self.runs += 1;
        if self.runs.is_multiple_of(GC_EVERY) || result.is_err() {
            self.runtime.run_gc();
        }
        let timed_out = self.epoch.elapsed() >= until;
        match result {
            Err(ScriptError::Thrown { .. }) if timed_out => Err(ScriptError::TimedOut(self.limits.time)),
            other => other,
        }
    }

    fn fresh_context(&self) -> Result<Context, ScriptError> {
        Context::full(&self.runtime).map_err(|_| ScriptError::OutOfMemory(self.limits.memory_bytes))
    }

    fn check(&self, code: &str) -> Result<String, ScriptError> {
        self.fresh_context()?.with(|ctx| {
            // The Function constructor parses its body without running it.
            let parse: Function = ctx.globals().get("Function").map_err(|e| self.caught(&ctx, e))?;
            parse
                .call::<_, Value>((code,))
                .catch(&ctx)
                .map_err(|e| self.error(e))
                .map(|_| String::new())
        })
    }

    /// Declares `code` in `context` and finds its `entry` function.
    fn declare(
        &self,
        context: &Context,
        code: &str,
        entry: &'static str,
    ) -> Result<Persistent<Function<'static>>, ScriptError> {
        context.with(|ctx| {
            let mut options = EvalOptions::default();
            options.global = true;
            options.strict = false;
            options.filename = Some(FILE_NAME.to_owned());
            ctx.eval_with_options::<(), _>(code.as_bytes(), options)
                .catch(&ctx)
                .map_err(|e| self.error(e))?;
            let handler: Value = ctx.globals().get(entry).map_err(|e| self.caught(&ctx, e))?;
            let Some(handler) = handler.into_function() else {
                return Err(ScriptError::BadResult(format!(
                    "the code must declare a function named {entry}"
                )));
            };
            Ok(Persistent::save(&ctx, handler))
        })
    }

    fn call(
        &mut self,
        scope: Option<&str>,
        code: &Arc<str>,
        entry: &'static str,
        input: &str,
    ) -> Result<String, ScriptError> {
        let found = scope.and_then(|s| {
            self.kept
                .iter()
                .position(|k| k.scope == s && k.entry == entry && *k.code == **code)
        });
        let (context, handler) = match found {
            Some(i) => {
                self.kept[i].last_used = self.runs;
                (self.kept[i].context.clone(), self.kept[i].handler.clone())
            }
            None => {
                let context = self.fresh_context()?;
                let handler = self.declare(&context, code, entry)?;
                if let Some(scope) = scope {
                    // The scope's older code, if any, is replaced; the least recently
                    // used scope makes room.
                    self.kept.retain(|k| k.scope != scope);
                    if self.kept.len() >= KEPT_CONTEXTS
                        && let Some(oldest) = self
                            .kept
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, k)| k.last_used)
                            .map(|(i, _)| i)
                    {
                        self.kept.swap_remove(oldest);
                    }
                    self.kept.push(Kept {
                        scope: scope.to_owned(),
                        code: Arc::clone(code),
                        context: context.clone(),
                        entry,
                        handler: handler.clone(),
                        last_used: self.runs,
                    });
                }
                (context, handler)
            }
        };
        let result = self.invoke(&context, handler, entry, input);
        if result.is_err()
            && let Some(scope) = scope
        {
            // A run that failed may have left its globals half changed: start afresh.
            self.kept.retain(|k| k.scope != scope);
        }
        result
    }

    fn invoke(
        &self,
        context: &Context,
        handler: Persistent<Function<'static>>,
        entry: &'static str,
        input: &str,
    ) -> Result<String, ScriptError> {
        context.with(|ctx| {
            let handler = handler.restore(&ctx).map_err(|e| self.caught(&ctx, e))?;
            let arg = ctx
                .json_parse(input.as_bytes())
                .map_err(|e| self.caught(&ctx, e))?;
            let out: Value = handler.call((arg,)).catch(&ctx).map_err(|e| self.error(e))?;
            if out.is_undefined() {
                return Err(ScriptError::BadResult(format!("{entry} returned nothing")));
            }
            let text = ctx
                .json_stringify(out)
                .catch(&ctx)
                .map_err(|e| self.error(e))?
                .map(|s| s.to_string())
                .transpose()
                .map_err(|e| self.caught(&ctx, e))?
                .ok_or_else(|| {
                    ScriptError::BadResult(format!("{entry} returned a value JSON cannot hold"))
                })?;
            if text.len() > self.limits.max_output_bytes {
                return Err(ScriptError::BadResult(format!(
                    "the result is {} bytes, more than the {} allowed",
                    text.len(),
                    self.limits.max_output_bytes
                )));
            }
            Ok(text)
        })
    }

    fn caught(&self, ctx: &Ctx<'_>, e: rquickjs::Error) -> ScriptError {
        match e {
            rquickjs::Error::Exception => self.error(CaughtError::from_error(ctx, e)),
            rquickjs::Error::Allocation => ScriptError::OutOfMemory(self.limits.memory_bytes),
            other => ScriptError::BadResult(other.to_string()),
        }
    }

    fn error(&self, caught: CaughtError<'_>) -> ScriptError {
        let (message, stack) = match &caught {
            CaughtError::Exception(e) => (e.message().unwrap_or_default(), e.stack().unwrap_or_default()),
            CaughtError::Value(v) => (describe_value(v), String::new()),
            CaughtError::Error(rquickjs::Error::Allocation) => {
                return ScriptError::OutOfMemory(self.limits.memory_bytes);
            }
            CaughtError::Error(e) => (e.to_string(), String::new()),
        };
        let name = match &caught {
            CaughtError::Exception(e) => e.as_object().get::<_, String>("name").unwrap_or_default(),
            _ => String::new(),
        };
        let lower = message.to_ascii_lowercase();
        if lower.contains("out of memory") {
            return ScriptError::OutOfMemory(self.limits.memory_bytes);
        }
        if lower.contains("stack overflow") || lower.contains("maximum call stack") {
            return ScriptError::StackOverflow(self.limits.stack_bytes);
        }
        if lower == "interrupted" {
            return ScriptError::TimedOut(self.limits.time);
        }
        let message = if name.is_empty() || message.starts_with(&name) {
            message
        } else {
            format!("{name}: {message}")
        };
        ScriptError::Thrown {
            message,
            at: position(&stack),
        }
    }
}

/// A thrown value that is not an Error, as text.
fn describe_value(v: &Value<'_>) -> String {
    if let Some(s) = v.as_string().and_then(|s| s.to_string().ok()) {
        return s;
    }
    v.ctx()
        .json_stringify(v.clone())
        .ok()
        .flatten()
        .and_then(|s| s.to_string().ok())
        .unwrap_or_else(|| format!("a {} was thrown", v.type_name()))
}

/// The first `transformation.js:LINE:COL` in a stack trace.
fn position(stack: &str) -> Option<(u32, u32)> {
    let at = stack.find(FILE_NAME)? + FILE_NAME.len();
    let mut parts = stack[at..]
        .strip_prefix(':')?
        .splitn(3, |c: char| !c.is_ascii_digit());
    let line = parts.next()?.parse().ok()?;
    let column = parts.next()?.parse().ok()?;
    Some((line, column))
}

#[cfg(test)]
mod tests;
