/*
 * validate.c: the streaming dataset validator (validate.h).
 *
 * A ds_reader splits the stream into records; each one is checked and
 * converted by ds_parse_record and, with a tokenizer, rendered by ds_render
 * into one reused token buffer; only counters, the histogram and the first
 * max_errors errors are kept.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "validate.h"

struct validator {
    struct validate_opts o;
    struct ds_reader reader;
    struct validate_report r;     /* filled as records arrive */
    enum ds_format format;
    struct ds_example ex;
    struct ds_tokens toks;
};

void validate_opts_default(struct validate_opts *o)
{
    memset(o, 0, sizeof *o);
    o->format = DS_FORMAT_AUTO;
    o->tmpl = CHAT_RAW;
    o->seq_len = 512;
    o->max_record = DS_MAX_RECORD;
    o->min_examples = 1;
    o->max_errors = 100;
}

static void add_error(struct validator *v, long line, enum ds_code code, const char *msg)
{
    struct validate_report *r = &v->r;
    r->error_count++;
    r->error_counts[code]++;
    if (r->n_errors < v->o.max_errors) {
        struct validate_error *e = &r->errors[r->n_errors++];
        e->line = line;
        e->code = code;
        snprintf(e->message, sizeof e->message, "%s", msg);
    }
}

static int bucket(long n)
{
    int k = 0;
    while (n > 1 && k < VALIDATE_HIST_BUCKETS - 1) {
        n >>= 1;
        k++;
    }
    return k;
}

/* ds_reader callback: 0 go on, 2 out of memory. */
static int on_record(void *ctx, const char *rec, size_t n, long line, enum ds_code code,
                     const char *msg)
{
    struct validator *v = ctx;
    struct validate_report *r = &v->r;
    char m[VALIDATE_MSG_LEN];
    if (code != DS_OK) {
        add_error(v, line, code, msg);
        return 0;
    }
    int rc = ds_parse_record(rec, n, line, &v->format, &v->ex, &code, m, sizeof m);
    if (rc < 0)
        return 2;
    if (rc > 0) {
        add_error(v, line, code, m);
        return 0;
    }
    if (r->format_line == 0 && v->o.format == DS_FORMAT_AUTO)
        r->format_line = line;
    if (v->o.tok) {
        if (ds_render(v->o.tok, v->o.tmpl, v->o.train_on_inputs, &v->ex, &v->toks, m,
                      sizeof m) != 0) {
            add_error(v, line, DS_TEMPLATE_ERROR, m);
            return 0;
        }
        long len = v->toks.n, first = 0;
        r->tokens += len;
        for (int i = 1; i < v->toks.n; i++) {
            r->trained_tokens += v->toks.mask[i] != 0;
            if (v->toks.mask[i] && !first)
                first = i;
        }
        if (len > r->max_tokens)
            r->max_tokens = len;
        r->truncated += len > (long)v->o.seq_len + 1;
        r->dropped += first == 0 || first > v->o.seq_len;
        r->histogram[bucket(len)]++;
    }
    r->examples++;
    return 0;
}

struct validator *validator_new(const struct validate_opts *o)
{
    struct validator *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->o = *o;
    if (v->o.max_errors < 0)
        v->o.max_errors = 0;
    if (v->o.max_errors > 0) {
        v->r.errors = calloc((size_t)v->o.max_errors, sizeof *v->r.errors);
        if (!v->r.errors) {
            free(v);
            return NULL;
        }
    }
    v->format = o->format;
    ds_reader_init(&v->reader, o->max_record, on_record, v);
    return v;
}

int validator_feed(struct validator *v, const void *data, size_t n)
{
    return ds_reader_feed(&v->reader, data, n) == 0 ? 0 : -1;
}

int validator_finish(struct validator *v, struct validate_report *out)
{
    struct validate_report *r = &v->r;
    if (ds_reader_finish(&v->reader) != 0)
        return -1;
    r->container = v->reader.container;
    r->format = v->format;
    r->bytes = v->reader.bytes;
    r->lines = ds_reader_lines(&v->reader);
    r->empty_lines = v->reader.empty_lines;
    r->min_examples = v->o.min_examples;
    r->tokenized = v->o.tok != NULL;
    r->tmpl = v->o.tmpl;
    r->seq_len = v->o.seq_len;
    r->train_on_inputs = v->o.train_on_inputs;
    if (r->examples < v->o.min_examples) {
        char m[VALIDATE_MSG_LEN];
        snprintf(m, sizeof m, "%ld valid example%s, the minimum is %ld", r->examples,
                 r->examples == 1 ? "" : "s", v->o.min_examples);
        add_error(v, 0, DS_TOO_FEW_EXAMPLES, m);
    }
    r->valid = r->error_count == 0;
    *out = *r;
    r->errors = NULL;
    r->n_errors = 0;
    return 0;
}

void validator_free(struct validator *v)
{
    if (!v)
        return;
    ds_reader_free(&v->reader);
    ds_example_free(&v->ex);
    ds_tokens_free(&v->toks);
    free(v->r.errors);
    free(v);
}

int validate_file(const char *path, const struct validate_opts *o, size_t chunk,
                  struct validate_report *r, char *err, size_t errlen)
{
    int rc = -1;
    if (chunk == 0)
        chunk = (size_t)1 << 20;
    memset(r, 0, sizeof *r);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    char *buf = malloc(chunk);
    struct validator *v = validator_new(o);
    if (!buf || !v) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    for (;;) {
        size_t got = fread(buf, 1, chunk, f);
        if (got == 0)
            break;
        if (validator_feed(v, buf, got) != 0) {
            snprintf(err, errlen, "%s: out of memory near line %ld", path, v->reader.line);
            goto out;
        }
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
        goto out;
    }
    if (validator_finish(v, r) != 0) {
        snprintf(err, errlen, "%s: out of memory at the end of the file", path);
        goto out;
    }
    rc = 0;
out:
    validator_free(v);
    free(buf);
    fclose(f);
    return rc;
}

void validate_report_free(struct validate_report *r)
{
    free(r->errors);
    memset(r, 0, sizeof *r);
}

/* ---- JSON ---- */

/* json_object_set_new that remembers a failure (a NULL value included). */
static void set(json_t *o, const char *key, json_t *val, int *ok)
{
    if (!val || json_object_set_new(o, key, val) != 0)
        *ok = 0;
}

static json_t *line_json(long line)
{
    return line > 0 ? json_integer(line) : json_null();
}

static json_t *tokens_json(const struct validate_report *r, int *ok)
{
    json_t *t = json_object(), *h = json_array();
    int top = 0;
    if (!t || !h) {
        json_decref(t);
        json_decref(h);
        *ok = 0;
        return NULL;
    }
    for (int k = 0; k < VALIDATE_HIST_BUCKETS; k++)
        if (r->histogram[k])
            top = k;
    for (int k = 0; k <= top; k++) {
        json_t *b = json_object();
        if (!b || json_array_append_new(h, b) != 0) {
            *ok = 0;
            break;
        }
        set(b, "min", json_integer(k == 0 ? 0 : 1LL << k), ok);
        set(b, "max", json_integer((1LL << (k + 1)) - 1), ok);
        set(b, "count", json_integer(r->histogram[k]), ok);
    }
    set(t, "template", json_string(chat_template_name(r->tmpl)), ok);
    set(t, "seq_len", json_integer(r->seq_len), ok);
    set(t, "train_on_inputs", json_boolean(r->train_on_inputs), ok);
    set(t, "total", json_integer(r->tokens), ok);
    set(t, "trained", json_integer(r->trained_tokens), ok);
    set(t, "max", json_integer(r->max_tokens), ok);
    set(t, "truncated", json_integer(r->truncated), ok);
    set(t, "dropped", json_integer(r->dropped), ok);
    set(t, "histogram", h, ok);
    return t;
}

json_t *validate_report_json(const struct validate_report *r)
{
    json_t *o = json_object(), *counts = json_object(), *errs = json_array();
    int ok = o && counts && errs;
    if (!ok) {
        json_decref(o);
        json_decref(counts);
        json_decref(errs);
        return NULL;
    }
    set(o, "valid", json_boolean(r->valid), &ok);
    set(o, "container", json_string(ds_container_name(r->container)), &ok);
    set(o, "format", r->format == DS_FORMAT_AUTO ? json_null()
                     : json_string(ds_format_name(r->format)), &ok);
    set(o, "format_line", line_json(r->format_line), &ok);
    set(o, "bytes", json_integer((json_int_t)r->bytes), &ok);
    set(o, "lines", json_integer(r->lines), &ok);
    set(o, "empty_lines", json_integer(r->empty_lines), &ok);
    set(o, "examples", json_integer(r->examples), &ok);
    set(o, "min_examples", json_integer(r->min_examples), &ok);
    set(o, "tokens", r->tokenized ? tokens_json(r, &ok) : json_null(), &ok);
    set(o, "error_count", json_integer(r->error_count), &ok);
    for (int c = 0; c < DS_CODE_COUNT; c++)
        if (r->error_counts[c])
            set(counts, ds_code_name((enum ds_code)c), json_integer(r->error_counts[c]), &ok);
    set(o, "error_counts", counts, &ok);
    for (int i = 0; i < r->n_errors; i++) {
        const struct validate_error *e = &r->errors[i];
        json_t *j = json_object(), *msg = json_string(e->message);
        if (!msg)
            msg = json_string("(the message is not UTF-8)");
        if (!j || json_array_append_new(errs, j) != 0) {
            json_decref(msg);
            ok = 0;
            break;
        }
        set(j, "line", line_json(e->line), &ok);
        set(j, "code", json_string(ds_code_name(e->code)), &ok);
        set(j, "message", msg, &ok);
    }
    set(o, "errors", errs, &ok);
    set(o, "errors_truncated", json_boolean(r->error_count > r->n_errors), &ok);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}
