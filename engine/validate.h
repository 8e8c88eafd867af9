/*
 * validate.h: the streaming dataset validator and its report.
 *
 * Bytes arrive in chunks of any size (a file read piece by piece, or an
 * upload as the server receives it); memory stays bounded by the longest
 * record (max_record) and the capped error list, whatever the file's size.
 * Every record goes through dataset.h's reader and ds_parse_record: the
 * first problem of a bad record is reported with the record's 1-based line
 * (JSONL line, or the line where its array element starts), a stable code
 * (dataset.h's enum ds_code) and a message. A file is valid when it has no
 * error and at least min_examples valid examples (too_few_examples, a
 * file-level error with no line, otherwise; the default minimum is 1:
 * OpenAI requires 10, set min_examples to match it). Whitespace-only lines
 * are skipped and counted, never errors. Reports are identical whatever
 * the chunk sizes.
 *
 * With a tokenizer every valid example is also rendered (dataset.h's
 * ds_render, the caller's template) for token statistics: total and trained
 * tokens, the longest, a histogram of lengths in power-of-two buckets
 * (bucket k holds lengths in [2^k, 2^(k+1) - 1]; bucket 0 also holds 0),
 * how many examples exceed seq_len + 1 tokens, the most one training window
 * holds (they would be truncated), and how many would keep no trained token
 * within those seq_len + 1 (ds_load drops them). Without one only the
 * structure is checked.
 *
 * The JSON report (validate_report_json; the server attaches it to uploaded
 * file objects):
 *   {
 *     "valid": true,
 *     "container": "jsonl" | "json_array" | "unknown",
 *     "format": "messages" | "prompt_completion" | "question_answer" |
 *               "alpaca" | "text" | null,        (null: no valid record)
 *     "format_line": 1 | null,                   (the record that fixed it;
 *                                                 null when given)
 *     "bytes": 123456, "lines": 1000, "empty_lines": 0,
 *     "examples": 998,                           (valid examples)
 *     "min_examples": 1,
 *     "tokens": {                                (null without a tokenizer)
 *       "template": "chatml", "seq_len": 512, "train_on_inputs": false,
 *       "total": 123456, "trained": 45678, "max": 900,
 *       "truncated": 3,                          (examples > seq_len + 1)
 *       "dropped": 0,                            (no trained token left)
 *       "histogram": [{"min": 0, "max": 1, "count": 0},
 *                     {"min": 2, "max": 3, "count": 0}, ...]
 *                                                (up to the highest
 *                                                 non-empty bucket)
 *     },
 *     "error_count": 2,                          (all errors)
 *     "error_counts": {"invalid_json": 1, "unrecognized_role": 1},
 *                                                (non-zero classes only)
 *     "errors": [{"line": 7, "code": "invalid_json", "message": "..."},
 *                {"line": null, "code": "too_few_examples", "message": "..."}],
 *                                                (the first max_errors)
 *     "errors_truncated": false                  (true when errors were left out)
 *   }
 */
#ifndef OWLORE_VALIDATE_H
#define OWLORE_VALIDATE_H

#include <stddef.h>

#include <jansson.h>

#include "dataset.h"

#define VALIDATE_HIST_BUCKETS 32
#define VALIDATE_MSG_LEN 256

struct validate_opts {
    enum ds_format format;         /* DS_FORMAT_AUTO: detect */
    const struct tokenizer *tok;   /* NULL: structure only */
    enum chat_template tmpl;
    int train_on_inputs;
    int seq_len;                   /* truncation count (with tok) */
    size_t max_record;             /* longest line / element, bytes */
    long min_examples;
    int max_errors;                /* errors kept in the report */
};

/* format auto, no tokenizer, raw template, seq_len 512, max_record
 * DS_MAX_RECORD, min_examples 1, max_errors 100. */
void validate_opts_default(struct validate_opts *o);

struct validate_error {
    long line;                     /* 1-based; 0 for file-level errors */
    enum ds_code code;
    char message[VALIDATE_MSG_LEN];
};

struct validate_report {
    int valid;
    enum ds_container container;
    enum ds_format format;         /* DS_FORMAT_AUTO: none detected */
    long format_line;              /* 0 when given or none */
    unsigned long long bytes;
    long lines, empty_lines;
    long examples, min_examples;
    int tokenized;
    enum chat_template tmpl;
    int seq_len, train_on_inputs;
    long long tokens, trained_tokens;
    long max_tokens, truncated, dropped;
    long histogram[VALIDATE_HIST_BUCKETS];
    long error_count;
    long error_counts[DS_CODE_COUNT];
    struct validate_error *errors; /* (n_errors), owned: the first max_errors */
    int n_errors;
};

struct validator;

/* NULL when out of memory. o is copied (its tokenizer must outlive v). */
struct validator *validator_new(const struct validate_opts *o);
/* 0, or -1 when out of memory (the report is then incomplete). */
int validator_feed(struct validator *v, const void *data, size_t n);
/* End of the stream: fills r (r owns its errors; validate_report_free).
 * 0, or -1 when out of memory. */
int validator_finish(struct validator *v, struct validate_report *r);
void validator_free(struct validator *v);

/* Validate a file read in chunks of `chunk` bytes (0: 1 MiB). 0 with r
 * filled (valid or not), -1 with a message when the file cannot be read or
 * memory runs out. */
int validate_file(const char *path, const struct validate_opts *o, size_t chunk,
                  struct validate_report *r, char *err, size_t errlen);

/* The report as JSON (the shape above); NULL when out of memory. */
json_t *validate_report_json(const struct validate_report *r);
void validate_report_free(struct validate_report *r);

#endif
