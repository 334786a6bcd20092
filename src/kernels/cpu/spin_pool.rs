//! A parallel-for for the short, frequent regions of a decode step: the caller works too, and
//! its helpers spin for a moment after each job instead of going to sleep.
//!
//! A decode step of Gemma3 270M is about 130 int8 products of 10–40 µs each. Called from a
//! thread outside rayon's pool, every rayon region wakes a parked worker and parks the caller
//! until the region ends: two wake-ups a product, a fifth of the step in the profile
//! (`benches/README.md`). Here the caller takes tasks itself, and the helpers (one fewer than
//! rayon's thread count, so the same number of threads work) spin for [`DEFAULT_SPIN`] after a
//! job before they park, as llama.cpp's thread pool does, so the next product finds them awake.
//! With one thread there are no helpers and no synchronisation at all.
//!
//! Only a caller outside rayon's pool, one at a time, uses it; a nested call, a second caller
//! at the same moment, or `BURN_INT8_SPIN_US=0` takes rayon's path instead. The environment
//! variable sets the spin time in microseconds (read once).

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock, TryLockError};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use rayon::prelude::*;

/// How long helpers spin after a job: longer than the float work between two products of a
/// decode step, short enough that an idle process stops using the cores almost at once.
const DEFAULT_SPIN: Duration = Duration::from_millis(2);

/// Runs `task(0) .. task(tasks - 1)`, in parallel where it pays, and returns when all are done.
pub(crate) fn parallel_for(tasks: usize, task: &(dyn Fn(usize) + Sync)) {
    if tasks <= 1 {
        return (0..tasks).for_each(task);
    }
    if rayon::current_thread_index().is_none()
        && let Some(pool) = pool()
    {
        let guard = match pool.caller.try_lock() {
            Ok(guard) => Some(guard),
            // A panic in an earlier caller left nothing half done: the job was waited for.
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        };
        if let Some(_guard) = guard {
            return pool.run(tasks, task);
        }
    }
    (0..tasks).into_par_iter().for_each(task);
}

/// One job: tasks claimed in order by whoever comes first.
struct Job<'a> {
    task: &'a (dyn Fn(usize) + Sync),
    tasks: usize,
    next: AtomicUsize,
    done: AtomicUsize,
    panicked: AtomicBool,
}

impl Job<'_> {
    fn work(&self) {
        loop {
            let i = self.next.fetch_add(1, SeqCst);
            if i >= self.tasks {
                return;
            }
            if panic::catch_unwind(AssertUnwindSafe(|| (self.task)(i))).is_err() {
                self.panicked.store(true, SeqCst);
            }
            self.done.fetch_add(1, SeqCst);
        }
    }
}

/// What the caller and the helpers share.
struct Shared {
    /// The running job, or null. It lives on the caller's stack; see [`Pool::run`] for why a
    /// helper never sees it dangle.
    job: AtomicPtr<Job<'static>>,
    /// Bumped when a job is posted.
    epoch: AtomicUsize,
    /// Helpers between reading `job` and being done with it.
    inside: AtomicUsize,
    /// Per helper: parked (the caller must unpark it) rather than spinning.
    parked: Vec<AtomicBool>,
    spin: Duration,
}

struct Pool {
    shared: Arc<Shared>,
    helpers: Vec<Thread>,
    caller: Mutex<()>,
}

/// The process's pool, started on first use; `None` when `BURN_INT8_SPIN_US=0`.
fn pool() -> Option<&'static Pool> {
    static POOL: OnceLock<Option<Pool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let spin = spin_time()?;
        let helper_count = rayon::current_num_threads().saturating_sub(1);
        let shared = Arc::new(Shared {
            job: AtomicPtr::new(std::ptr::null_mut()),
            epoch: AtomicUsize::new(0),
            inside: AtomicUsize::new(0),
            parked: (0..helper_count).map(|_| AtomicBool::new(false)).collect(),
            spin,
        });
        let mut helpers = Vec::with_capacity(helper_count);
        for index in 0..helper_count {
            let shared = Arc::clone(&shared);
            let spawned = thread::Builder::new().name(format!("burn-int8-spin-{index}")).spawn(move || helper(&shared, index));
            match spawned {
                Ok(handle) => helpers.push(handle.thread().clone()),
                Err(err) => {
                    // A job would wait for a helper that does not exist: use rayon instead.
                    tracing::warn!(%err, "could not start an int8 helper thread; using rayon's pool");
                    return None;
                }
            }
        }
        tracing::debug!(helpers = helper_count, ?spin, "int8 spin pool started");
        Some(Pool { shared, helpers, caller: Mutex::new(()) })
    })
    .as_ref()
}

/// `BURN_INT8_SPIN_US`, or the default; `None` when it is 0.
fn spin_time() -> Option<Duration> {
    let Ok(value) = std::env::var("BURN_INT8_SPIN_US") else {
        return Some(DEFAULT_SPIN);
    };
    match value.trim().parse::<u64>() {
        Ok(0) => None,
        Ok(micros) => Some(Duration::from_micros(micros)),
        Err(_) => {
            tracing::warn!(
                value,
                "BURN_INT8_SPIN_US is not a number of microseconds; using the default"
            );
            Some(DEFAULT_SPIN)
        }
    }
}

impl Pool {
    fn run(&self, tasks: usize, task: &(dyn Fn(usize) + Sync)) {
        let shared = &self.shared;
        let job = Job {
            task,
            tasks,
            next: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
        };
        // The lifetime is erased for the helpers. `job` is unpublished (null) and every helper
        // that loaded the pointer is out (`inside == 0`) before this frame returns: a helper
        // counts itself in before it loads `job`, so (all orderings being SeqCst) it either
        // is seen by the wait below, or loads the null stored before it.
        shared
            .job
            .store((&job as *const Job<'_>).cast_mut().cast(), SeqCst);
        shared.epoch.fetch_add(1, SeqCst);
        for (helper, parked) in self.helpers.iter().zip(&shared.parked) {
            if parked.load(SeqCst) {
                helper.unpark();
            }
        }
        job.work();
        while job.done.load(SeqCst) < tasks {
            std::hint::spin_loop();
        }
        shared.job.store(std::ptr::null_mut(), SeqCst);
        while shared.inside.load(SeqCst) != 0 {
            std::hint::spin_loop();
        }
        if job.panicked.load(SeqCst) {
            panic!("a task of an int8 kernel panicked on a helper thread");
        }
    }
}

/// A helper's life: wait for a job (spin, then park), take tasks until none is left, repeat.
fn helper(shared: &Shared, index: usize) {
    let mut seen = 0;
    loop {
        let started = Instant::now();
        let mut spins = 0u32;
        while shared.epoch.load(SeqCst) == seen {
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(1024) && started.elapsed() >= shared.spin {
                // Announce the park first, then look again: the caller bumps the epoch before
                // it reads the flag, so one of the two sees the other.
                shared.parked[index].store(true, SeqCst);
                while shared.epoch.load(SeqCst) == seen {
                    thread::park();
                }
                shared.parked[index].store(false, SeqCst);
            }
        }
        seen = shared.epoch.load(SeqCst);
        shared.inside.fetch_add(1, SeqCst);
        let job = shared.job.load(SeqCst);
        if !job.is_null() {
            // SAFETY: non-null means the caller of `Pool::run` has not yet passed its wait on
            // `inside`, which counts this helper, so the job is alive.
            unsafe { &*job }.work();
        }
        shared.inside.fetch_sub(1, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_once_across_many_jobs() {
        for tasks in [0, 1, 2, 3, 7, 64, 1000] {
            for _ in 0..50 {
                let counts: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
                parallel_for(tasks, &|i| {
                    counts[i].fetch_add(1, SeqCst);
                });
                assert!(
                    counts.iter().all(|count| count.load(SeqCst) == 1),
                    "{tasks} tasks"
                );
            }
        }
    }

    #[test]
    fn concurrent_and_nested_callers_fall_back_to_rayon() {
        let total = AtomicUsize::new(0);
        thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..100 {
                        parallel_for(8, &|_| {
                            parallel_for(3, &|_| {
                                total.fetch_add(1, SeqCst);
                            });
                        });
                    }
                });
            }
        });
        assert_eq!(total.load(SeqCst), 4 * 100 * 8 * 3);
    }

    #[test]
    fn a_panicking_task_panics_the_caller() {
        let result = panic::catch_unwind(|| parallel_for(16, &|i| assert!(i != 5, "task 5")));
        assert!(result.is_err());
        // The pool still works afterwards.
        let ran = AtomicUsize::new(0);
        parallel_for(16, &|_| {
            ran.fetch_add(1, SeqCst);
        });
        assert_eq!(ran.load(SeqCst), 16);
    }
}
