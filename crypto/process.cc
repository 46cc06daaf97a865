#include "crypto/process.h"

#include <sys/prctl.h>
#include <sys/resource.h>

namespace lethe {

void DisableCoreDumps() {
  struct rlimit none = {0, 0};
  ::setrlimit(RLIMIT_CORE, &none);
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

}  // namespace lethe
