/*
 * test_assert.h: ordered comparisons for the unit tests that print both sides when they fail
 * (cmocka's assert_true(a >= b) prints only the expression). Include after <cmocka.h>.
 *
 *   ASSERT_GE(a, b)  a >= b        ASSERT_GT(a, b)  a > b
 *   ASSERT_LE(a, b)  a <= b        ASSERT_LT(a, b)  a < b
 *
 * Both sides are evaluated once, as long double (integers and doubles alike; not pointers).
 * A failure reads
 *   "ASSERT_GE(n, 3) failed: n = 2, 3 = 3", then cmocka's file:line.
 */
#ifndef KEAPSYNC_TEST_ASSERT_H
#define KEAPSYNC_TEST_ASSERT_H

/* Both sides as long double: exact for every int64 and every double the tests compare. */
#define TEST_ASSERT_CMP_(name, op, a, b)                                                           \
    do {                                                                                           \
        long double a_ = (long double)(a), b_ = (long double)(b);                                  \
        if (!(a_ op b_))                                                                           \
            fail_msg(name "(%s, %s) failed: %s = %.21Lg, %s = %.21Lg", #a, #b, #a, a_, #b, b_);    \
    } while (0)

#define ASSERT_GE(a, b) TEST_ASSERT_CMP_("ASSERT_GE", >=, a, b)
#define ASSERT_GT(a, b) TEST_ASSERT_CMP_("ASSERT_GT", >, a, b)
#define ASSERT_LE(a, b) TEST_ASSERT_CMP_("ASSERT_LE", <=, a, b)
#define ASSERT_LT(a, b) TEST_ASSERT_CMP_("ASSERT_LT", <, a, b)

#endif
