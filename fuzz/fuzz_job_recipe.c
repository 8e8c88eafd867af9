/*
 * fuzz_job_recipe.c: libFuzzer harness for a job's `method` object
 * (server/job_recipe.h) without a network: the input is a job-create body;
 * its "method" goes through job_recipe_parse, job_recipe_check against
 * stories260K's configuration and the planner, as jobs_check_create does.
 * The resolved method (job_recipe_method_json) must parse again to the
 * same resolved method, as the queue relies on at run time.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "fuzz_common.h"
#include "job_recipe.h"
#include "load.h"
#include "plan.h"

static struct model_config cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[512];
    (void)argc, (void)argv;
    if (model_read_config(fuzz_shared_path("data/models/stories260K/stories260K.bin"), &cfg, err,
                          sizeof err) != 0) {
        fprintf(stderr, "fuzz_job_recipe: %s\n", err);
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    char param[JOB_PARAM_LEN], err[1024];
    struct recipe r, again;
    struct plan p;
    json_t *body = json_loadb((const char *)data, n, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(body)) {
        json_decref(body);
        return 0;
    }
    if (job_recipe_parse(json_object_get(body, "method"), &r, param, err, sizeof err) == 0 &&
        job_recipe_check(&r, &cfg, param, err, sizeof err) == 0) {
        plan_compute(&cfg, &r, r.batch_size, r.seq_len, PLAN_FP32, &p);
        json_t *m = job_recipe_method_json(&r);
        if (!m || job_recipe_parse(m, &again, param, err, sizeof err) != 0) {
            fprintf(stderr, "resolved method refused: %s: %s\n", param, err);
            abort();
        }
        json_t *m2 = job_recipe_method_json(&again);
        if (!json_equal(m, m2))
            abort();
        json_decref(m);
        json_decref(m2);
    }
    json_decref(body);
    return 0;
}
