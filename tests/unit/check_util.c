/* check_util.c - the util module: hash map, error table, CRCs. */
#include "util/alloc.h"
#include "util/crc.h"
#include "util/err.h"
#include "util/map.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

START_TEST(test_map_basic)
{
    struct mg_map m;
    mg_map_init(&m);
    ck_assert_ptr_null(mg_map_get_str(&m, "a"));
    int a = 1, b = 2;
    ck_assert_ptr_null(mg_map_put_str(&m, "a", &a));
    ck_assert_ptr_eq(mg_map_put_str(&m, "a", &b), &a); /* replace returns the old value */
    ck_assert_ptr_eq(mg_map_get_str(&m, "a"), &b);
    ck_assert_ptr_null(mg_map_put_u64(&m, 42, &a));
    ck_assert_ptr_eq(mg_map_get_u64(&m, 42), &a);
    ck_assert_uint_eq(m.count, 2);
    ck_assert_ptr_eq(mg_map_del_str(&m, "a"), &b);
    ck_assert_ptr_null(mg_map_get_str(&m, "a"));
    ck_assert_ptr_null(mg_map_del_str(&m, "a"));
    ck_assert_uint_eq(m.count, 1);
    mg_map_fini(&m);
}
END_TEST

/* Many inserts and deletes: growth and tombstone reuse keep every live key findable, and
 * iteration yields each live key once, as a NUL-terminated string. */
START_TEST(test_map_many)
{
    struct mg_map m;
    mg_map_init(&m);
    enum { N = 20000 };
    char key[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "topic-%d", i);
        mg_map_put_str(&m, key, (void *)(intptr_t)(i + 1));
    }
    for (int i = 0; i < N; i += 2) {
        snprintf(key, sizeof key, "topic-%d", i);
        ck_assert_ptr_eq(mg_map_del_str(&m, key), (void *)(intptr_t)(i + 1));
    }
    ck_assert_uint_eq(m.count, N / 2);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "topic-%d", i);
        void *v = mg_map_get_str(&m, key);
        if (i % 2)
            ck_assert_ptr_eq(v, (void *)(intptr_t)(i + 1));
        else
            ck_assert_ptr_null(v);
    }
    size_t pos = 0, seen = 0, klen;
    const char *k;
    void *v;
    while (mg_map_next(&m, &pos, &k, &klen, &v)) {
        ck_assert_uint_eq(strlen(k), klen);
        int i = atoi(k + strlen("topic-"));
        ck_assert_int_eq(i % 2, 1);
        ck_assert_ptr_eq(v, (void *)(intptr_t)(i + 1));
        seen++;
    }
    ck_assert_uint_eq(seen, N / 2);
    mg_map_fini(&m);
}
END_TEST

START_TEST(test_errors)
{
    ck_assert_str_eq(mg_strerror(-MG_ECHECKSUM), "checksum mismatch");
    ck_assert_str_eq(mg_strerror(MG_ECHECKSUM), "checksum mismatch");
    ck_assert_str_eq(mg_errname(-MG_EFENCED), "MG_EFENCED");
    ck_assert_int_eq(mg_err_server_error(-MG_ECONSUMERBUSY), 5);  /* ConsumerBusy */
    ck_assert_int_eq(mg_err_server_error(-MG_ECHECKSUM), 9);      /* ChecksumError */
    ck_assert_int_eq(mg_err_server_error(-MG_EPRODUCERBUSY), 16); /* ProducerBusy */
    ck_assert_str_eq(mg_strerror(-12345), "unknown error");
}
END_TEST

START_TEST(test_crc)
{
    ck_assert_uint_eq(mg_crc32c(0, "123456789", 9), 0xe3069283u);
    ck_assert_uint_eq(mg_crc32(0, "123456789", 9), 0xcbf43926u);
    /* resumable */
    uint32_t c = mg_crc32c(0, "1234", 4);
    ck_assert_uint_eq(mg_crc32c(c, "56789", 5), 0xe3069283u);
    c = mg_crc32(0, "12345", 5);
    ck_assert_uint_eq(mg_crc32(c, "6789", 4), 0xcbf43926u);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_map_basic);
    tcase_add_test(tc, test_map_many);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_crc);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
