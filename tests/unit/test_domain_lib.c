/* test_domain_lib.c: the pure part of libevstore's domain layer, compiled into the unit test
 * binary (which links the server objects, not the client library).
 *
 * These files never talk to the daemon (client/domain_priv.h), so the unit tests in
 * test_domain_*.c can drive them directly; the repository, the persistence subscriber and the
 * snapshot calls are tested against a real daemon in tests/integration/test_domain*.c. */
#include "../../client/domain_command.c"
#include "../../client/domain_entity.c"
#include "../../client/domain_fields.c"
#include "../../client/domain_pubsub.c"
#include "../../client/domain_registry.c"
#include "../../client/domain_snapshot.c"
#include "../../client/domain_value.c"
