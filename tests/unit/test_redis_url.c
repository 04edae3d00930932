/* Unit tests of the pure parts of the cache module: redis:// URL parsing and
 * the local SHA1 of Lua scripts (checked against FIPS 180-1 vectors and the
 * digests Redis's SCRIPT LOAD returns). */
#include "cache.h"
#include "harness.h"

#include <stdlib.h>
#include <string.h>

static void expect_url(const char *url, const char *host, int port, int db, const char *user,
                       const char *password) {
    cache_url u;
    char err[256] = "";
    int rc = cache_parse_url(url, &u, err, sizeof err);
    CHECK(rc == 0, "%s refused: %s", url, err);
    if (rc != 0)
        return;
    CHECK(strcmp(u.host, host) == 0, "%s: host \"%s\", want \"%s\"", url, u.host, host);
    CHECK(u.port == port, "%s: port %d, want %d", url, u.port, port);
    CHECK(u.db == db, "%s: db %d, want %d", url, u.db, db);
    CHECK(strcmp(u.user, user) == 0, "%s: user \"%s\", want \"%s\"", url, u.user, user);
    CHECK(strcmp(u.password, password) == 0, "%s: password \"%s\", want \"%s\"", url, u.password,
          password);
}

static void expect_bad_url(const char *url, const char *want) {
    cache_url u;
    char err[256] = "";
    int rc = cache_parse_url(url, &u, err, sizeof err);
    CHECK(rc == -1, "%s accepted", url ? url : "(null)");
    CHECK(strcmp(err, want) == 0, "%s: error \"%s\", want \"%s\"", url ? url : "(null)", err, want);
}

static void test_good_urls(void) {
    expect_url("redis://127.0.0.1:25379/3", "127.0.0.1", 25379, 3, "", "");
    expect_url("redis://localhost", "localhost", 6379, 0, "", "");
    expect_url("redis://localhost/", "localhost", 6379, 0, "", "");
    expect_url("redis://cache.example.com:6380", "cache.example.com", 6380, 0, "", "");
    expect_url("redis://redis_1:1/15", "redis_1", 1, 15, "", "");
    expect_url("REDIS://h:65535/0", "h", 65535, 0, "", "");
    expect_url("redis://[::1]:6379/2", "::1", 6379, 2, "", "");
    expect_url("redis://[fe80::1]/4", "fe80::1", 6379, 4, "", "");
    expect_url("redis://:secret@h:1/1", "h", 1, 1, "", "secret");
    expect_url("redis://alice:s%40cr%3At@h/9", "h", 6379, 9, "alice", "s@cr:t");
    expect_url("redis://a:p@ss@h:2", "h", 2, 0, "a", "p@ss");
    expect_url("redis://h:007/0010", "h", 7, 10, "", "");
}

static void test_bad_urls(void) {
    expect_bad_url(NULL, "redis URL: missing");
    expect_bad_url("", "redis URL: expected redis://host:port/db");
    expect_bad_url("http://h:1/0", "redis URL: expected redis://host:port/db");
    expect_bad_url("127.0.0.1:6379", "redis URL: expected redis://host:port/db");
    expect_bad_url("rediss://h:1/0", "redis URL: TLS (rediss://) is not supported");
    expect_bad_url("redis://", "redis URL: missing host");
    expect_bad_url("redis://:6379/0", "redis URL: missing host");
    expect_bad_url("redis:///0", "redis URL: missing host");
    expect_bad_url("redis://h:/0", "redis URL: bad port \"\" (expected 1..65535)");
    expect_bad_url("redis://h:abc/0", "redis URL: bad port \"abc\" (expected 1..65535)");
    expect_bad_url("redis://h:0/0", "redis URL: bad port \"0\" (expected 1..65535)");
    expect_bad_url("redis://h:65536/0", "redis URL: bad port \"65536\" (expected 1..65535)");
    expect_bad_url("redis://h:-1/0", "redis URL: bad port \"-1\" (expected 1..65535)");
    expect_bad_url("redis://h:1:2/0", "redis URL: bad port \"1:2\" (expected 1..65535)");
    expect_bad_url("redis://h:99999999999999999999/0",
                   "redis URL: bad port \"99999999999999999999\" (expected 1..65535)");
    expect_bad_url("redis://h:1/x", "redis URL: bad db number \"x\" (expected a number >= 0)");
    expect_bad_url("redis://h:1/-1", "redis URL: bad db number \"-1\" (expected a number >= 0)");
    expect_bad_url("redis://h:1/1/2", "redis URL: bad db number \"1/2\" (expected a number >= 0)");
    expect_bad_url("redis://h:1/99999999999",
                   "redis URL: bad db number \"99999999999\" (expected a number >= 0)");
    expect_bad_url("redis://h:1/0?timeout=1",
                   "redis URL: query or fragment ('?') is not supported");
    expect_bad_url("redis://h:1/0#x", "redis URL: query or fragment ('#') is not supported");
    expect_bad_url("redis://h h:1/0", "redis URL: space or control character at offset 9");
    expect_bad_url("redis://h:1/0\n", "redis URL: space or control character at offset 13");
    expect_bad_url("redis://h!:1/0", "redis URL: bad character '!' in host");
    expect_bad_url("redis://[::1:6379/0", "redis URL: missing ']' after IPv6 host");
    expect_bad_url("redis://[]:1/0", "redis URL: missing host");
    expect_bad_url("redis://[::1]x/0", "redis URL: unexpected 'x' after IPv6 host");
    expect_bad_url("redis://secret@h:1/0",
                   "redis URL: expected user:password or :password before '@'");
    expect_bad_url("redis://u:@h:1/0", "redis URL: empty password");
    expect_bad_url("redis://u:%zz@h:1/0", "redis URL: bad password");
    expect_bad_url("redis://u:%4@h:1/0", "redis URL: bad password");
    expect_bad_url("redis://u%00:p@h:1/0", "redis URL: bad user name");

    /* a long host is refused, not truncated */
    char url[400] = "redis://";
    memset(url + 8, 'a', 300);
    strcpy(url + 308, ":1/0");
    expect_bad_url(url, "redis URL: host too long");

    /* a NULL or short error buffer is fine */
    cache_url u;
    CHECK(cache_parse_url("nope", &u, NULL, 0) == -1, "bad URL accepted without err");
    char tiny[8];
    CHECK(cache_parse_url("nope", &u, tiny, sizeof tiny) == -1, "bad URL accepted");
    CHECK(strlen(tiny) == 7, "error not truncated to the buffer: \"%s\"", tiny);
}

static void test_script_sha1(void) {
    /* FIPS 180-1 test vectors, and block-boundary lengths */
    struct {
        const char *in;
        const char *sha1;
    } v[] = {
        {"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
        {"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "84983e441c3bd26ebaae4aa1f95129e5e54670f1"},
        {"return 1", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        cache_script s;
        cache_script_init(&s, v[i].in);
        CHECK(strcmp(s.sha1, v[i].sha1) == 0, "sha1(\"%s\") = %s, want %s", v[i].in, s.sha1,
              v[i].sha1);
        CHECK(s.source == v[i].in, "source not kept by pointer");
    }
    /* one million 'a': exercises many blocks */
    char *a = malloc(1000001);
    memset(a, 'a', 1000000);
    a[1000000] = '\0';
    cache_script s;
    cache_script_init(&s, a);
    CHECK_STR(s.sha1, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    free(a);
    /* 55, 56, 63, 64 bytes: the padding edge cases (digests from sha1sum) */
    const char *edge[] = {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    const char *edge_sha[] = {
        "c1c8bbdc22796e28c0e15163d20899b65621d65a", "c2db330f6083854c99d4b5bfb6e8f29f201be699",
        "03f09f5b158a7a8cdad920bddc29b81c18a551f5", "0098ba824b5c16427bd7a1122a5a442a25ec644d"};
    for (int i = 0; i < 4; i++) {
        cache_script_init(&s, edge[i]);
        CHECK(strcmp(s.sha1, edge_sha[i]) == 0, "sha1 of %zu bytes = %s, want %s", strlen(edge[i]),
              s.sha1, edge_sha[i]);
    }
}

TEST_MAIN(TEST(test_good_urls), TEST(test_bad_urls), TEST(test_script_sha1))
