// What the C API needs from the server layer for cross-thread and blocking
// work. A request's loop_ctx is its worker; null when the engine runs
// without a server (unit tests).
#ifndef ICAP_SERVER_WORKER_API_HPP
#define ICAP_SERVER_WORKER_API_HPP

#include "icap/icap.h"

namespace icap::detail {

int worker_post(void *loop_ctx, icap_request *req, icap_post_cb cb, void *user);
int worker_offload(void *loop_ctx, icap_request *req, icap_work_cb work, icap_post_cb done,
                   void *user);

}  // namespace icap::detail

#endif
