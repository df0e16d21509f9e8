/* Helper threads for the int8 products: a product's weight rows are cut into blocks, and the
 * calling thread and the helpers claim blocks from one counter until none is left.
 *
 * Why (docs/performance.md "Two cores for a reply"): a reply token streams ~134 MB of int8
 * weights, and one core here reads them at ~8-10 GB/s, below what two cores read together.
 *
 * Why claiming rather than a fixed split: the node shares its cores with DDS, TTS and the camera
 * driver, and a split that waits for a helper the scheduler has parked stalls every product
 * (the reason torch runs one intra-op thread here, runtime/threads.py). Here the caller never
 * waits for a helper to start: it takes blocks itself until none is left and then waits only for
 * the blocks a helper has already claimed and is running. A parked helper claims nothing, so the
 * worst case is the one-thread speed. Every output row is computed by the same code as with one
 * thread, so results are bit-identical for any number of threads.
 *
 * A helper spins for a while after its last block (products come every few µs within a token)
 * and then sleeps on a condition variable; the caller wakes sleepers when it posts a product.
 * One caller at a time owns the helpers (a second concurrent caller, e.g. a background IPS
 * summary beside a decision, computes on its own thread); a forked child gets fresh helpers.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#define POOL_MAX 8           /* threads in all, the caller included */
#define POOL_SPIN (1 << 14)  /* pause instructions a helper spins before it sleeps (~0.2-0.5 ms) */

typedef void (*pool_fn)(void *arg, int64_t block);

typedef struct {
  pid_t pid;                   /* the process that started the helpers */
  atomic_int threads;          /* requested threads, the caller included */
  int started;                 /* helpers running */
  pthread_t th[POOL_MAX];
  atomic_int busy;             /* 1 while a caller owns the helpers */
  _Alignas(64) atomic_uint_fast64_t next;  /* (job << 32) | next unclaimed block */
  _Alignas(64) atomic_long done;           /* blocks finished of the current job */
  _Alignas(64) atomic_uint job;            /* the current job's number; helpers look for a new one */
  pool_fn fn;
  void *arg;
  int64_t blocks;
  atomic_int sleepers;
  pthread_mutex_t mu;
  pthread_cond_t cv;           /* a new job for sleeping helpers */
  pthread_cond_t grown;        /* more threads for helpers beyond the old setting */
} row_pool;

static int pool_threads(void);

static row_pool pool_state = {.threads = 1, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER,
                                 .grown = PTHREAD_COND_INITIALIZER};

static inline void pool_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/* Claim and run blocks of job `job` until none is left or another job has been posted. */
static void pool_claim(row_pool *p, unsigned job) {
  for (;;) {
    uint_fast64_t v = atomic_load_explicit(&p->next, memory_order_acquire);
    if ((unsigned)(v >> 32) != job || (int64_t)(v & 0xffffffffu) >= p->blocks) return;
    if (!atomic_compare_exchange_weak_explicit(&p->next, &v, v + 1, memory_order_acq_rel, memory_order_acquire))
      continue;
    /* the block is ours: the job cannot change before `done` counts it */
    p->fn(p->arg, (int64_t)(v & 0xffffffffu));
    atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
  }
}

typedef struct { row_pool *p; int index; } helper_arg;

static void *pool_helper(void *arg) {
  row_pool *p = ((helper_arg *)arg)->p;
  int index = ((helper_arg *)arg)->index;  /* helper i serves while the setting asks for > i + 1 threads */
  free(arg);
  unsigned seen = atomic_load(&p->job);
  for (;;) {
    unsigned job;
    int spins = 0;
    while ((job = atomic_load_explicit(&p->job, memory_order_acquire)) == seen || index >= p->threads - 1) {
      if (index >= p->threads - 1) {  /* the setting asks for fewer threads: wait until it grows */
        pthread_mutex_lock(&p->mu);
        while (index >= p->threads - 1) pthread_cond_wait(&p->grown, &p->mu);
        pthread_mutex_unlock(&p->mu);
        seen = atomic_load(&p->job);
        continue;
      }
      if (++spins < POOL_SPIN) { pool_pause(); continue; }
      pthread_mutex_lock(&p->mu);
      atomic_fetch_add(&p->sleepers, 1);
      while (atomic_load(&p->job) == seen) pthread_cond_wait(&p->cv, &p->mu);
      atomic_fetch_sub(&p->sleepers, 1);
      pthread_mutex_unlock(&p->mu);
      spins = 0;
    }
    seen = job;
    pool_claim(p, job);
  }
  return NULL;
}

/* Threads for later products, the caller included (1: none; at most POOL_MAX). */
int proassist_set_threads(int n) {
  row_pool *p = &pool_state;
  pthread_mutex_lock(&p->mu);
  p->threads = n < 1 ? 1 : (n > POOL_MAX ? POOL_MAX : n);
  pthread_cond_broadcast(&p->grown);
  pthread_mutex_unlock(&p->mu);
  return p->threads;
}

static int pool_threads(void) { return pool_state.threads; }

/* Start the helpers the setting asks for (in this process: a forked child starts its own). */
static int pool_ready(row_pool *p) {
  pid_t me = getpid();
  if (p->pid != me) {  /* first use, or a forked child whose helpers did not survive the fork */
    p->pid = me;
    p->started = 0;
    atomic_store(&p->busy, 0);
    atomic_store(&p->sleepers, 0);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    pthread_cond_init(&p->grown, NULL);
  }
  while (p->started < p->threads - 1) {
    helper_arg *a = (helper_arg *)malloc(sizeof(helper_arg));
    if (!a) break;
    a->p = p;
    a->index = p->started;
    if (pthread_create(&p->th[p->started], NULL, pool_helper, a) != 0) { free(a); break; }
    pthread_detach(p->th[p->started]);
    p->started++;
  }
  return p->started;
}

/* Run fn(arg, b) for b in [0, blocks): on the helpers and the caller, or on the caller alone. */
static void pool_run(pool_fn fn, void *arg, int64_t blocks) {
  row_pool *p = &pool_state;
  int expected = 0;
  if (blocks < 2 || p->threads < 2 || !atomic_compare_exchange_strong(&p->busy, &expected, 1)) {
    for (int64_t b = 0; b < blocks; ++b) fn(arg, b);
    return;
  }
  if (pool_ready(p) == 0) {
    atomic_store(&p->busy, 0);
    for (int64_t b = 0; b < blocks; ++b) fn(arg, b);
    return;
  }
  unsigned job = atomic_load(&p->job) + 1;
  p->fn = fn;
  p->arg = arg;
  p->blocks = blocks;
  atomic_store_explicit(&p->done, 0, memory_order_relaxed);
  atomic_store_explicit(&p->next, (uint_fast64_t)job << 32, memory_order_release);
  atomic_store(&p->job, job);  /* seq_cst, as the sleepers count: no helper misses its wake-up */
  if (atomic_load(&p->sleepers) > 0) {
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
  }
  pool_claim(p, job);
  for (int spins = 0; atomic_load_explicit(&p->done, memory_order_acquire) < blocks; ++spins)
    if (spins < POOL_SPIN) pool_pause(); else sched_yield();  /* a helper finishing its one block */
  atomic_store_explicit(&p->busy, 0, memory_order_release);
}
