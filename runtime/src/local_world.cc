// The local world of fpdt_comm.h: ranks of one process meet at a host barrier for each
// collective and swap the buffers and events they publish. A failing rank aborts the world so
// that no other rank waits for it forever.
#include <condition_variable>
#include <mutex>
#include <vector>

#include "fpdt_comm.h"

struct fpdt_local_world {
  int world = 0;
  std::mutex m;
  std::condition_variable cv;
  int arrived = 0;
  long long generation = 0;
  bool aborted = false;
  std::vector<fpdt_local_entry> entries;
};

namespace {
int wait_all(fpdt_local_world* w, std::unique_lock<std::mutex>& lock) {
  if (w->aborted) return -1;
  const long long gen = w->generation;
  if (++w->arrived == w->world) {
    w->arrived = 0;
    w->generation++;
    w->cv.notify_all();
    return 0;
  }
  w->cv.wait(lock, [&] { return w->generation != gen || w->aborted; });
  return w->aborted ? -1 : 0;
}
}  // namespace

extern "C" fpdt_local_world* fpdt_local_world_create(int world) {
  if (world < 1 || world > FPDT_MAX_LOCAL_RANKS) return nullptr;
  auto* w = new fpdt_local_world();
  w->world = world;
  w->entries.resize(world);
  return w;
}

extern "C" void fpdt_local_world_destroy(fpdt_local_world* w) { delete w; }

extern "C" int fpdt_local_world_size(const fpdt_local_world* w) { return w ? w->world : 0; }

extern "C" int fpdt_local_exchange(fpdt_local_world* w, int rank, const fpdt_local_entry* mine, fpdt_local_entry* all) {
  std::unique_lock<std::mutex> lock(w->m);
  w->entries[rank] = *mine;
  if (wait_all(w, lock)) return -1;
  // a rank rewrites its entry only after the next barrier, which needs this rank too
  for (int q = 0; q < w->world; q++) all[q] = w->entries[q];
  return 0;
}

extern "C" int fpdt_local_barrier(fpdt_local_world* w) {
  std::unique_lock<std::mutex> lock(w->m);
  return wait_all(w, lock);
}

extern "C" void fpdt_local_abort(fpdt_local_world* w) {
  std::lock_guard<std::mutex> lock(w->m);
  w->aborted = true;
  w->cv.notify_all();
}
