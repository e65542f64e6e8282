/* A job in C: the proof that docs/abi.md (and enclave_v1.h, generated from the abi crate) is
 * enough to write a job in another language than Rust.
 *
 * Freestanding: no libc, no allocator. It reads parameter `sql` (or uses a default count per
 * district), runs it, copies every Arrow IPC message the host streams in into one static buffer,
 * and emits that buffer — a complete IPC stream — as aggregate output `result`.
 *
 * Build: clang --target=wasm32-unknown-unknown -O2 -nostdlib -ffreestanding -fno-builtin \
 *        -Wl,--no-entry -I enclave/abi/include -o count.wasm count.c
 */
#include "enclave_v1.h"

static char sql[4096];
static char message[1024];
static unsigned char stream[1 << 20];

static const char default_sql[] =
    "SELECT district, COUNT(*) AS n FROM residents GROUP BY district ORDER BY district";

static uint32_t length(const char *s) {
    uint32_t n = 0;
    while (s[n]) n++;
    return n;
}

static void copy(char *dst, const char *src, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) dst[i] = src[i];
}

/* Reports the host's last error as the job's failure. */
static int32_t fail_with_host_error(void) {
    int32_t n = enclave_last_error(message, sizeof message);
    if (n < 0) n = 0;
    if ((uint32_t)n > sizeof message) n = sizeof message;
    enclave_fail(message, (uint32_t)n);
    return 1;
}

ENCLAVE_JOB {
    int64_t sql_len = enclave_param("sql", 3, sql, sizeof sql);
    if (sql_len == ENCLAVE_ERR_NOT_FOUND) {
        sql_len = length(default_sql);
        copy(sql, default_sql, (uint32_t)sql_len);
    } else if (sql_len < 0 || sql_len > (int64_t)sizeof sql) {
        static const char too_long[] = "parameter `sql` is longer than 4096 bytes";
        enclave_fail(too_long, length(too_long));
        return 1;
    }
    int64_t handle = enclave_query_open(sql, (uint32_t)sql_len);
    if (handle < 0) return fail_with_host_error();

    uint32_t used = 0;
    for (;;) {
        int64_t n = enclave_query_next((int32_t)handle);
        if (n == 0) break;
        if (n < 0) return fail_with_host_error();
        if ((uint64_t)n > sizeof stream - used) {
            static const char too_big[] = "the result is larger than 1 MiB";
            enclave_fail(too_big, length(too_big));
            return 1;
        }
        if (enclave_query_read((int32_t)handle, stream + used, (uint32_t)n) != 0)
            return fail_with_host_error();
        used += (uint32_t)n;
    }
    enclave_query_close((int32_t)handle);

    static const char done[] = "c job: result streamed";
    enclave_log(done, length(done));
    if (enclave_output("result", 6, ENCLAVE_OUTPUT_AGGREGATE, stream, used) != 0)
        return fail_with_host_error();
    return 0;
}
