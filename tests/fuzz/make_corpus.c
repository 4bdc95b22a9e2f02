/* tests/fuzz: writes the seed corpus — one valid frame per file, from hy_msg_encode — into the
 * directory given. Run once by hand; the files are committed (see CMakeLists.txt). */
#include <stdio.h>
#include <string.h>

#include "ipc.h"

static uint8_t buf[HY_IPC_HEADER + 65536];
static hy_msg m;

static int write_frame(const char *dir, const char *name)
{
    size_t len;
    hy_iov bulk;
    hy_error err;
    if (hy_msg_encode(&m, buf, sizeof buf, &len, &bulk, HY_IPC_MAX_PAYLOAD, &err) != 0) {
        fprintf(stderr, "%s: %s\n", name, err.msg);
        return 1;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len ||
        (bulk.len && fwrite(bulk.base, 1, bulk.len, f) != bulk.len) || fclose(f) != 0) {
        perror(path);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_corpus DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    int bad = 0;

    memset(&m, 0, sizeof m);
    m.type = HY_MSG_PING;
    m.request = 1;
    m.u.ping.nonce = 0x0123456789abcdefu;
    bad |= write_frame(dir, "ping");

    memset(&m, 0, sizeof m);
    m.type = HY_MSG_HELLO;
    m.request = 2;
    m.u.hello = (hy_msg_hello){.min_version = 1, .max_version = 1,
                               .features = HY_FEATURE_MEMFD | HY_FEATURE_PROGRESS,
                               .name = {"hybridctl", 9}};
    bad |= write_frame(dir, "hello");

    memset(&m, 0, sizeof m);
    m.type = HY_MSG_SUBMIT;
    m.request = 3;
    m.u.submit = (hy_msg_submit){.job = HY_JOB_PI, .backend = HY_BACKEND_NATIVE,
                                 .mode = HY_MODE_SPLIT, .threads = 4, .repeat = 3,
                                 .switch_interval_us = 5000, .n = 1000000, .seed = 42};
    bad |= write_frame(dir, "submit_pi");

    static const int32_t elems[8] = {5, -1, 3, 9, 0, 2, -7, 4};
    memset(&m, 0, sizeof m);
    m.type = HY_MSG_SUBMIT;
    m.request = 4;
    m.u.submit = (hy_msg_submit){.job = HY_JOB_SORT, .backend = HY_BACKEND_LOCKED,
                                 .mode = HY_MODE_SPLIT, .dtype = HY_DT_I32, .threads = 2,
                                 .repeat = 1, .array = HY_ARRAY_INLINE, .n = 8,
                                 .inline_data = elems, .inline_bytes = sizeof elems};
    bad |= write_frame(dir, "submit_sort_inline");

    memset(&m, 0, sizeof m);
    m.type = HY_MSG_SUBMIT;
    m.request = 5;
    m.u.submit = (hy_msg_submit){.job = HY_JOB_COMPARE_PI, .mode = HY_MODE_REPLICATE,
                                 .repeat = 1, .n = 1000, .seed = 1,
                                 .backends = 1u << HY_BACKEND_SERIAL | 1u << HY_BACKEND_NATIVE,
                                 .nthreads_list = 3, .threads_list = {1, 2, 4}};
    bad |= write_frame(dir, "submit_compare");

    memset(&m, 0, sizeof m);
    m.type = HY_MSG_ERROR;
    m.request = 6;
    m.u.error = (hy_msg_error){.code = HY_EDTYPE, .job_id = 7,
                               .message = {"unknown dtype 9", 15}};
    bad |= write_frame(dir, "error");

    memset(&m, 0, sizeof m);
    m.type = HY_MSG_STATUS;
    m.request = 8;
    bad |= write_frame(dir, "status");

    static const hy_result_row row = {.backend = HY_BACKEND_OPENCL, .mode = HY_MODE_SPLIT,
                                      .flags = HY_ROW_POCL_CPU, .threads = 1, .copies = 1,
                                      .n = 1000, .hits = 785, .estimate = 3.14,
                                      .median_ns = 1000, .launches = 1, .repeat = 3};
    memset(&m, 0, sizeof m);
    m.type = HY_MSG_RESULT;
    m.request = 9;
    m.u.result.job = HY_JOB_PI;
    m.u.result.nrows = 1;
    m.u.result.job_id = 7;
    m.u.result.rows = &row;
    bad |= write_frame(dir, "result");

    memset(&m, 0, sizeof m);
    m.type = HY_MSG_ACCEPTED;
    m.request = 10;
    m.u.accepted = (hy_msg_accepted){.queue_position = 2, .job_id = 7};
    bad |= write_frame(dir, "accepted");

    memset(&m, 0, sizeof m);
    m.type = HY_MSG_JOBS;
    m.request = 11;
    m.u.jobs.flags = HY_JOBS_ALL;
    bad |= write_frame(dir, "jobs");

    static const hy_job_record job = {.job_id = 7, .uid = 1000, .job = HY_JOB_SORT,
                                      .state = 2, .backend = HY_BACKEND_NATIVE,
                                      .device = HY_JOB_DEVICE_NONE, .dtype = HY_DT_F64,
                                      .nrows = 1, .threads = 2, .n = 1000, .done = 5,
                                      .total = 10};
    memset(&m, 0, sizeof m);
    m.type = HY_MSG_JOBS_REPLY;
    m.request = 11;
    m.u.jobs_reply = (hy_msg_jobs_reply){.njobs = 1, .others_running = 1, .jobs = &job};
    bad |= write_frame(dir, "jobs_reply");

    static const hy_cell_record cell = {.work = HY_JOB_SORT, .dtype = HY_DT_F32,
                                        .backend = HY_BACKEND_PROCESS, .transport = 2,
                                        .threads = 2, .log2n = 20, .samples = 7,
                                        .median_ns = 5000000, .flags = HY_CELL_TRUSTED};
    memset(&m, 0, sizeof m);
    m.type = HY_MSG_MODEL_REPLY;
    m.request = 12;
    m.u.model = (hy_msg_model_reply){.ncells = 1, .total = 1, .trust = 5, .ring = 20,
                                     .cells = &cell};
    bad |= write_frame(dir, "model_reply");
    return bad;
}
