// ThreadPool: the workers behind the multithreaded kernels (matmul, attention). Idle workers spin
// for 200 microseconds (through the serial stretches of one decoded token), then sleep on a
// condition variable, so a waiting chat or server does not burn a core (libgomp's default spin-wait of ~300k iterations after every parallel
// region halved single-thread speed on SMT siblings and shared machines). Tasks are handed out
// dynamically, so a descheduled worker only delays the task it holds.
// Threads: set_pool_threads(), else $NIBBLE_THREADS, else std::thread::hardware_concurrency().
#pragma once

#include <cstdint>
#include <functional>

namespace nibble {

// Runs fn(task) for task in [0, n_tasks) on the pool (the calling thread helps) and returns when
// all are done. Runs inline when n_tasks <= 1 or the pool has one thread. Not reentrant: fn must
// not call parallel_for.
void parallel_for(int64_t n_tasks, const std::function<void(int64_t task)>& fn);

// Threads the pool uses (including the caller).
int pool_threads();

// Sets the pool's size (1..1024, overriding $NIBBLE_THREADS) before its first use; returns false,
// changing nothing, when the pool already exists or n is out of range (`nibble bench -t N`).
bool set_pool_threads(int n);

}  // namespace nibble
