/* Unit tests of the configuration module: the masking of passwords in URLs
 * and libpq DSNs (config_mask_secret), the scrubbing of library messages that
 * echo them (config_scrub_secret, and db_connect's use of it on libpq's real
 * messages), and the defaults that must match the local cluster. */
#include <string.h>

#include "config.h"
#include "db.h"
#include "harness.h"

/* CHECK_STR for a buffer (the macro's NULL test warns on an array). */
static void buf_is(const char *got, const char *want) {
    CHECK_STR(got, want);
}

static void mask_is(const char *in, const char *want) {
    char out[512];
    config_mask_secret(in, out, sizeof out);
    CHECK(strcmp(out, want) == 0, "mask of \"%s\": got \"%s\", want \"%s\"", in, out, want);
}

static void mask_urls(void) {
    mask_is("redis://:pass@host:6379/0", "redis://:***@host:6379/0");
    mask_is("amqp://alloc:s3cr3tPW@127.0.0.1:5672/alloc", "amqp://alloc:***@127.0.0.1:5672/alloc");
    mask_is("redis://alice:pw@[::1]:6379/2", "redis://alice:***@[::1]:6379/2");
    mask_is("postgresql://u:pw@db.example:5432/alloc", "postgresql://u:***@db.example:5432/alloc");
    mask_is("postgres://u:pw@h1:5432,h2:5433/alloc?sslmode=require",
            "postgres://u:***@h1:5432,h2:5433/alloc?sslmode=require");
    mask_is("AMQP://u:pw@h/v", "AMQP://u:***@h/v");
}

static void mask_leaves_urls_without_password(void) {
    mask_is("redis://127.0.0.1:15379/0", "redis://127.0.0.1:15379/0");
    mask_is("amqp://alloc@host/alloc", "amqp://alloc@host/alloc");
    mask_is("amqp://alloc:@host/alloc", "amqp://alloc:@host/alloc"); /* empty: nothing to hide */
    mask_is("postgresql://u@h/db?sslmode=disable", "postgresql://u@h/db?sslmode=disable");
    mask_is("postgresql://h:5432/db", "postgresql://h:5432/db");
    mask_is("amqp://h/%2f", "amqp://h/%2f");
    mask_is("", "");
}

static void mask_encoded_and_odd_passwords(void) {
    mask_is("redis://a:s%40cr%3At@h/9", "redis://a:***@h/9");
    mask_is("redis://a:p@ss@h:2", "redis://a:***@h:2"); /* the last '@' ends the userinfo */
    mask_is("amqp://u:pa/ss@h/v", "amqp://u:***@h/v");  /* unencoded '/': ambiguous, masked */
    mask_is("redis://:pa?ss@h:1/0", "redis://:***@h:1/0");
    mask_is("redis://:pa#ss@h:1/0", "redis://:***@h:1/0");
    mask_is("redis://:a:b:c@h/0", "redis://:***@h/0");
}

static void mask_query_passwords(void) {
    mask_is("postgresql://u@h/db?sslmode=disable&password=pw&application_name=x",
            "postgresql://u@h/db?sslmode=disable&password=***&application_name=x");
    mask_is("postgresql://u:pw@h/db?password=pw2", "postgresql://u:***@h/db?password=***");
    mask_is("postgresql://h/db?password=a@b&user=u", "postgresql://h/db?password=***&user=u");
    mask_is("postgres://h/db?passw%6Frd=pw", "postgres://h/db?passw%6Frd=***");
    mask_is("postgresql://h/db?PASSWORD=pw", "postgresql://h/db?PASSWORD=***");
    mask_is("postgresql://h/db?sslpassword=pw", "postgresql://h/db?sslpassword=***");
    mask_is("postgresql://h/db?password=", "postgresql://h/db?password=");
    mask_is("postgresql://h/db?password_hint=x", "postgresql://h/db?password_hint=x");
}

static void mask_dsns(void) {
    mask_is("host=x password=secret user=y", "host=x password=*** user=y");
    mask_is("host=x password=secret", "host=x password=***");
    mask_is("password=secret host=x", "password=*** host=x");
    mask_is("host=x password='a b\\'c' user=y", "host=x password=*** user=y");
    mask_is("host=x password = secret dbname=d", "host=x password = *** dbname=d");
    mask_is("host=x password= 'a b' dbname=d", "host=x password= *** dbname=d");
    mask_is("password=a\\ b user=y", "password=*** user=y");
    mask_is("password=a password='b'", "password=*** password=***");
    mask_is("PASSWORD=x sslpassword=y", "PASSWORD=*** sslpassword=***");
    mask_is("host=127.0.0.1 port=15432 dbname=alloc user=alloc",
            "host=127.0.0.1 port=15432 dbname=alloc user=alloc");
}

static void mask_dsn_keywords_not_values(void) {
    /* "password" as a value is not a keyword; a value is not read as a pair */
    mask_is("user=password dbname=password", "user=password dbname=password");
    mask_is("application_name='x password=y' user=u", "application_name='x password=y' user=u");
    mask_is("host=x password='' user=y", "host=x password=*** user=y");
}

static void mask_malformed_dsns(void) {
    mask_is("host=x password='abc def host=y", "host=x password=***"); /* unterminated */
    mask_is("host=x password secret user=y", "host=x password *** user=y");
    mask_is("host=x password=", "host=x password=");
    mask_is("host=x password=\\", "host=x password=***");
}

static void mask_makes_printable(void) {
    mask_is("host=x\npassword=y\tuser=z", "host=x password=*** user=z");
    mask_is("redis://h\x01:1/0", "redis://h?:1/0");
    mask_is("host=\x7f", "host=?");
    mask_is("host=\xc3\xa9t\xc3\xa9", "host=\xc3\xa9t\xc3\xa9"); /* UTF-8 stays */
}

static void mask_null_and_tiny_buffers(void) {
    char out[8] = "xxxxxxx";
    config_mask_secret(NULL, out, sizeof out);
    buf_is(out, "");
    memcpy(out, "xxxxxxx", 8);
    config_mask_secret("redis://:pw@h/0", out, 0);
    buf_is(out, "xxxxxxx"); /* outlen 0: nothing written */
    config_mask_secret("redis://:pw@h/0", NULL, 10);
    config_mask_secret("redis://:pw@h/0", out, 1);
    buf_is(out, "");
}

/* Every truncation is a prefix of the full masked string, NUL-terminated
 * within outlen, and never shows a byte of the password. */
static void mask_truncates_safely(void) {
    static const char *inputs[] = {"amqp://alloc:s3cr3tPW@127.0.0.1:5672/alloc",
                                   "host=127.0.0.1 port=1 password='s3cr3tPW' user=alloc",
                                   "postgresql://u@h/db?password=s3cr3tPW&x=1"};
    for (size_t k = 0; k < sizeof inputs / sizeof inputs[0]; k++) {
        char full[256];
        config_mask_secret(inputs[k], full, sizeof full);
        size_t n = strlen(full);
        for (size_t outlen = 1; outlen <= n + 2; outlen++) {
            char out[260];
            memset(out, '#', sizeof out);
            config_mask_secret(inputs[k], out, outlen);
            size_t got = strnlen(out, outlen);
            CHECK(got < outlen, "outlen %zu: not NUL-terminated", outlen);
            CHECK(out[outlen] == '#', "outlen %zu: wrote past the buffer", outlen);
            CHECK(got == (outlen - 1 < n ? outlen - 1 : n) && strncmp(out, full, got) == 0,
                  "outlen %zu: \"%.*s\" is not a prefix of \"%s\"", outlen, (int)got, out, full);
            CHECK(!strstr(out, "s3cr"), "outlen %zu: shows the password: %s", outlen, out);
        }
    }
}

static void mask_many_passwords(void) {
    char dsn[1024] = "", out[2048];
    for (int i = 0; i < 40; i++)
        strcat(dsn, "password=s3cr3tPW ");
    config_mask_secret(dsn, out, sizeof out);
    CHECK(!strstr(out, "s3cr3tPW"), "40 passwords: shows one: %s", out);
    CHECK(!strncmp(out, "password=*** password=***", 25), "40 passwords: got %s", out);
}

static void scrub_is(const char *conn, const char *text, const char *want) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", text);
    config_scrub_secret(conn, buf, sizeof buf);
    CHECK(strcmp(buf, want) == 0, "scrub of \"%s\" with %s: got \"%s\", want \"%s\"", text, conn,
          buf, want);
}

static void scrub_messages(void) {
    scrub_is("postgresql://u:s3cr%ZZ@h/db", "invalid percent-encoded token: \"s3cr%ZZ\"",
             "invalid percent-encoded token: \"***\"");
    scrub_is("postgresql://u:pw1@[h/db", "end of string in URI: \"postgresql://u:pw1@[h/db\"",
             "end of string in URI: \"postgresql://u:***@[h/db\"");
    scrub_is("postgresql://u:p%40ss@h/db", "password p@ss rejected", "password *** rejected");
    scrub_is("host=x password='a b\\'c'", "saw a b'c and 'a b\\'c'", "saw *** and ***");
    scrub_is("host=x password=pw1", "pw1 pw1pw1", "*** ******");
    scrub_is("host=x user=y", "nothing secret here", "nothing secret here");
    scrub_is("redis://h:1/0", "connect to redis h:1: refused", "connect to redis h:1: refused");
}

static void scrub_truncates(void) {
    char buf[8];
    snprintf(buf, sizeof buf, "ab%s", "pwpwp");
    config_scrub_password("p", buf, sizeof buf);
    buf_is(buf, "ab***w*"); /* grew: cut at the buffer, still NUL-terminated */
    snprintf(buf, sizeof buf, "abc");
    config_scrub_password("", buf, sizeof buf);
    buf_is(buf, "abc");
    config_scrub_password(NULL, buf, sizeof buf);
    buf_is(buf, "abc");
    config_scrub_secret(NULL, buf, sizeof buf);
    buf_is(buf, "abc");
}

/* libpq echoes a URI it cannot parse, or the token it could not decode:
 * db_connect's message must not (these fail while parsing: no server asked). */
static void db_connect_hides_what_libpq_echoes(void) {
    static const char *dsns[] = {
        "postgresql://u:s3cr3tPW@[h/db",   "postgresql://u:s3cr3tPW%ZZ@h/db",
        "postgresql://u:s3cr3tPW%00@h/db", "postgresql://u@h/db?password=s3cr3tPW%zz",
        "postgresql://u:s3cr3tPW@h:1x/db", "host=x password='s3cr3tPW",
    };
    for (size_t k = 0; k < sizeof dsns / sizeof dsns[0]; k++) {
        char err[DB_ERRMSG_MAX] = "";
        db_conn *c = db_connect(dsns[k], err, sizeof err);
        CHECK(c == NULL, "%s: connected", dsns[k]);
        db_close(c);
        CHECK(err[0] != '\0', "%s: no message", dsns[k]);
        CHECK(!strstr(err, "s3cr3tPW"), "%s: message shows the password: %s", dsns[k], err);
    }
}

static void defaults_match_the_local_cluster(void) {
    CHECK_STR(CONFIG_DEFAULT_PG_DSN, "host=127.0.0.1 port=15432 dbname=alloc user=alloc");
    CHECK_STR(CONFIG_DEFAULT_AMQP_URL, "amqp://alloc:alloc@127.0.0.1:15672/alloc");
    CHECK_STR(CONFIG_DEFAULT_REDIS_URL, "redis://127.0.0.1:15379/0");
    const char *help = config_flags_help();
    CHECK(strstr(help, CONFIG_DEFAULT_PG_DSN), "help lacks the PG default: %s", help);
    CHECK(strstr(help, CONFIG_DEFAULT_AMQP_URL), "help lacks the AMQP default: %s", help);
    CHECK(strstr(help, CONFIG_DEFAULT_REDIS_URL), "help lacks the Redis default: %s", help);
    CHECK(strstr(help, CONFIG_DEFAULT_FILE_STORE), "help lacks the file store default: %s", help);
}

TEST_MAIN(TEST(mask_urls), TEST(mask_leaves_urls_without_password),
          TEST(mask_encoded_and_odd_passwords), TEST(mask_query_passwords), TEST(mask_dsns),
          TEST(mask_dsn_keywords_not_values), TEST(mask_malformed_dsns), TEST(mask_makes_printable),
          TEST(mask_null_and_tiny_buffers), TEST(mask_truncates_safely), TEST(mask_many_passwords),
          TEST(scrub_messages), TEST(scrub_truncates), TEST(db_connect_hides_what_libpq_echoes),
          TEST(defaults_match_the_local_cluster))
