/* test_notify_watchdog.c: which $WATCHDOG_USEC and $WATCHDOG_PID ask evstored for keep-alives,
 * and how often it sends them (server/notify.h). */
#include <criterion/criterion.h>

#include "../../server/notify.h"

TestSuite(notify_watchdog);

Test(notify_watchdog, half_of_watchdog_usec_in_milliseconds) {
    cr_assert_eq(notify_watchdog_interval_ms("30000000", NULL, 42), 15000);
    cr_assert_eq(notify_watchdog_interval_ms("200000", NULL, 42), 100);
}

Test(notify_watchdog, a_tiny_interval_is_one_millisecond) {
    cr_assert_eq(notify_watchdog_interval_ms("1", NULL, 42), 1);
    cr_assert_eq(notify_watchdog_interval_ms("1999", NULL, 42), 1);
}

Test(notify_watchdog, no_keep_alive_without_a_usable_watchdog_usec) {
    const char *bad[] = {NULL, "", "0", "-5", " 5", "5s", "abc", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(notify_watchdog_interval_ms(bad[i], NULL, 42), 0, "usec \"%s\"",
                     bad[i] ? bad[i] : "(unset)");
}

Test(notify_watchdog, watchdog_pid_must_be_this_process) {
    cr_assert_eq(notify_watchdog_interval_ms("200000", "42", 42), 100);
    cr_assert_eq(notify_watchdog_interval_ms("200000", "", 42), 100);
    cr_assert_eq(notify_watchdog_interval_ms("200000", "43", 42), 0);
    cr_assert_eq(notify_watchdog_interval_ms("200000", "x42", 42), 0);
}
