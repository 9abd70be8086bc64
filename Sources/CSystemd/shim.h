// libsystemd (Debian's libsystemd-dev): sd_notify, the fd store, socket activation and the journal.
// The supervisor uses the library rather than re-implementing either protocol.
#include <systemd/sd-daemon.h>
#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <systemd/sd-journal.h>
