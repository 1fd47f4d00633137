/*
 * test_assert.h: ordered comparisons for the unit tests that print both sides when they fail
 * (cmocka's assert_true(a >= b) prints only the expression). Include after <cmocka.h>.
 *
 *   ASSERT_GE(a, b)  a >= b        ASSERT_GT(a, b)  a > b
 *   ASSERT_LE(a, b)  a <= b        ASSERT_LT(a, b)  a < b
 *
 * Both sides are evaluated once, as long long (every integer the tests compare fits); for
 * doubles use ASSERT_GE_DBL / ASSERT_LE_DBL. A failure reads
 *   "ASSERT_GE(n, 3) failed: n = 2, 3 = 3", then cmocka's file:line.
 */
#ifndef KEAPSYNC_TEST_ASSERT_H
#define KEAPSYNC_TEST_ASSERT_H

#define TEST_ASSERT_CMP_(name, op, a, b)                                                           \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (!(a_ op b_))                                                                           \
            fail_msg(name "(%s, %s) failed: %s = %lld, %s = %lld", #a, #b, #a, a_, #b, b_);        \
    } while (0)

#define TEST_ASSERT_CMP_DBL_(name, op, a, b)                                                       \
    do {                                                                                           \
        double a_ = (double)(a), b_ = (double)(b);                                                 \
        if (!(a_ op b_))                                                                           \
            fail_msg(name "(%s, %s) failed: %s = %.17g, %s = %.17g", #a, #b, #a, a_, #b, b_);      \
    } while (0)

#define ASSERT_GE(a, b)     TEST_ASSERT_CMP_("ASSERT_GE", >=, a, b)
#define ASSERT_GT(a, b)     TEST_ASSERT_CMP_("ASSERT_GT", >, a, b)
#define ASSERT_LE(a, b)     TEST_ASSERT_CMP_("ASSERT_LE", <=, a, b)
#define ASSERT_LT(a, b)     TEST_ASSERT_CMP_("ASSERT_LT", <, a, b)
#define ASSERT_GE_DBL(a, b) TEST_ASSERT_CMP_DBL_("ASSERT_GE_DBL", >=, a, b)
#define ASSERT_GT_DBL(a, b) TEST_ASSERT_CMP_DBL_("ASSERT_GT_DBL", >, a, b)
#define ASSERT_LE_DBL(a, b) TEST_ASSERT_CMP_DBL_("ASSERT_LE_DBL", <=, a, b)
#define ASSERT_LT_DBL(a, b) TEST_ASSERT_CMP_DBL_("ASSERT_LT_DBL", <, a, b)

#endif
