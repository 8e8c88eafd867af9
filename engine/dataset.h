/*
 * dataset.h: fine-tuning datasets: files of records -> conversations ->
 * token ids with loss masks -> training windows.
 *
 * Files. A file is either JSONL (one record per line) or one JSON array of
 * records: a file whose first byte past an optional UTF-8 BOM and any
 * whitespace is '[' is an array, anything else JSONL. JSONL lines may end in
 * LF or CRLF; lines holding only whitespace are skipped (counted, not
 * errors); the last line needs no newline. Array elements are found by a
 * small state machine (strings, escapes, bracket depth) and each is parsed
 * on its own, so neither kind of file is ever held whole: memory is bounded
 * by the longest record (max_record bytes, DS_MAX_RECORD by default).
 * Every record has a line: its JSONL line, or the line where its array
 * element starts (1-based).
 *
 * Record formats (one per file: given, or fixed by the first valid record):
 *   messages           {"messages": [{"role", "content", "weight"?, "name"?}]}
 *                      roles system / user / assistant; weight 0 or 1, on
 *                      assistant messages only (0: not trained on); other
 *                      top-level keys are ignored
 *   prompt_completion  {"prompt", "completion"}      -> user, assistant
 *   question_answer    {"question", "answer"}         -> user, assistant
 *                      (GSM8K); a format of its own, converted exactly like
 *                      prompt_completion
 *   alpaca             {"instruction", "input"?, "output"} -> user
 *                      (instruction), user (input, when not empty),
 *                      assistant (output); other keys (text, answer, ...)
 *                      are ignored. The alpaca template renders the second
 *                      user message as the "### Input:" section (the
 *                      Stanford prompt); every other template gets
 *                      instruction "\n" input as one user message, as
 *                      LLaMA-Factory joins them
 *   text               {"text"} -> one document, every token trained
 * Required text fields are non-empty strings, except prompt, which may be
 * "" (legacy OpenAI files); alpaca's input is optional (a string or null).
 * A record's own format, for detection and mismatch reports, is the first of
 * these its keys name: messages; prompt or completion; question;
 * instruction or output; text.
 *
 * Tokens. A conversation is rendered with chat_render (chat.h) in the
 * caller's template; a text record is rendered with the raw template as one
 * assistant message, whatever the template: BOS, the text, EOS, all
 * trained (a plain document). Loss is on
 * the assistant tokens only unless train_on_inputs. mask[i] = 1 when ids[i]
 * is trained on (predicted at position i - 1); a record's first token is
 * never a target.
 *
 * Windows (what the trainer reads, train.h's struct token_windows):
 *   ids (n, seq_len + 1), targets (n, seq_len): targets[w][j] is the id at
 *   ids[w][j + 1] when that token is trained on and belongs to the same
 *   example as ids[w][j], else -1 (ignored by the loss).
 *   An example longer than seq_len + 1 tokens is truncated to its first
 *   seq_len + 1 (counted). An example left without any trained target is
 *   dropped (counted). Without packing each example has a window of its
 *   own, padded with pad_id (targets -1). With packing examples are laid
 *   one after another into the current window while they fit whole; one
 *   that does not fit closes the window (padded) and opens the next, so an
 *   example is never split across windows and order is kept. Packed
 *   examples share a window without attention masking between them.
 */
#ifndef OWLORE_DATASET_H
#define OWLORE_DATASET_H

#include <stdint.h>
#include <stddef.h>

#include "chat.h"
#include "tokenizer.h"
#include "train.h"

#define DS_MAX_RECORD ((size_t)8 << 20)  /* default longest record, bytes */
#define DS_RECORD_LIMIT ((size_t)INT32_MAX) /* the longest max_record */

enum ds_format { DS_FORMAT_AUTO, DS_MESSAGES, DS_PROMPT_COMPLETION, DS_QUESTION_ANSWER,
                 DS_ALPACA, DS_TEXT, DS_FORMAT_COUNT };

enum ds_container { DS_CONTAINER_UNKNOWN, DS_JSONL, DS_JSON_ARRAY };

/* Stable error codes; ds_code_name gives the string the reports carry.
 *   invalid_json        not JSON (the reason, line and column), or a broken
 *                       array (a missing ',' or ']', content after it, an
 *                       element cut off by the end of the file)
 *   invalid_utf8        a byte sequence that is not UTF-8 (RFC 3629)
 *   line_too_long       a line (array element) over max_record bytes; it is
 *                       skipped without being held
 *   duplicate_key       an object repeats a key
 *   data_type           the record, or one of its messages, is not a JSON
 *                       object; an optional field has the wrong type
 *   unknown_format      no format fixed yet and the record's keys name none
 *   format_mismatch     the record is of another format than the file's
 *   missing_key         a required key of the file's (non-messages) format
 *                       is absent
 *   missing_messages_list  no "messages", or it is not a non-empty array
 *   message_missing_key    a message lacks "role" or "content"
 *   message_unrecognized_key  a message key other than role, content,
 *                       weight, name
 *   unrecognized_role   role is not "system", "user" or "assistant"
 *   missing_content     content (or a required text field) is not a
 *                       non-empty string
 *   invalid_weight      weight other than 0 or 1, or on a non-assistant
 *                       message
 *   example_missing_assistant_message  no assistant message
 *   template_error      the template cannot render the conversation (only
 *                       checked when tokenizing)
 *   too_few_examples    file level: fewer valid examples than the minimum
 */
enum ds_code {
    DS_OK,
    DS_INVALID_JSON, DS_INVALID_UTF8, DS_LINE_TOO_LONG, DS_DUPLICATE_KEY, DS_DATA_TYPE,
    DS_UNKNOWN_FORMAT, DS_FORMAT_MISMATCH, DS_MISSING_KEY,
    DS_MISSING_MESSAGES_LIST, DS_MESSAGE_MISSING_KEY, DS_MESSAGE_UNRECOGNIZED_KEY,
    DS_UNRECOGNIZED_ROLE, DS_MISSING_CONTENT, DS_INVALID_WEIGHT,
    DS_EXAMPLE_MISSING_ASSISTANT_MESSAGE, DS_TEMPLATE_ERROR, DS_TOO_FEW_EXAMPLES,
    DS_CODE_COUNT
};

const char *ds_code_name(enum ds_code c);
const char *ds_format_name(enum ds_format f);          /* "auto" for DS_FORMAT_AUTO */
int ds_format_parse(const char *name, enum ds_format *f); /* 0 / -1 */
const char *ds_container_name(enum ds_container c);    /* "jsonl", "json_array", "unknown" */

/* ---- reading records from a byte stream, in chunks of any size ---- */

/* Called for each record (code DS_OK: rec holds its n bytes, a JSONL line
 * without its line end, or an array element) or each reading error (code
 * invalid_json or line_too_long, rec NULL, msg says why). `line` is the
 * record's line. rec is only valid during the call. Return 0 to go on; any
 * other value stops the reader, and feed/finish return it. */
typedef int (*ds_record_fn)(void *ctx, const char *rec, size_t n, long line,
                            enum ds_code code, const char *msg);

struct ds_reader {
    /* read-only for callers */
    enum ds_container container;
    unsigned long long bytes;  /* bytes fed */
    long line;                 /* the line being read (1-based) */
    long empty_lines;          /* whitespace-only lines skipped (JSONL) */
    /* private */
    size_t max_record;
    ds_record_fn fn;
    void *ctx;
    char *buf;                 /* the record being assembled across chunks */
    size_t len, cap;
    size_t dropped;            /* bytes of an over-long record seen so far */
    int too_long;
    long rec_line;
    int bom;                   /* BOM bytes matched so far; -1 once decided */
    int state, in_str, esc, need_elem;
    long depth;
    unsigned char last;        /* the last byte fed */
    int stopped;               /* the callback's non-zero value, once stopped */
};

/* max_record 0 means DS_MAX_RECORD; at most DS_RECORD_LIMIT. */
void ds_reader_init(struct ds_reader *r, size_t max_record, ds_record_fn fn, void *ctx);
/* 0, the callback's stop value, or -1 when out of memory. */
int ds_reader_feed(struct ds_reader *r, const void *data, size_t n);
/* End of the stream: the last line, or an unclosed array. Same returns. */
int ds_reader_finish(struct ds_reader *r);
/* Lines in the stream after finish (a final newline ends a line, it does
 * not start one). */
long ds_reader_lines(const struct ds_reader *r);
void ds_reader_free(struct ds_reader *r);

/* ---- one record -> a conversation ---- */

struct ds_json;

struct ds_example {
    struct chat_message *msgs;    /* (n_msgs) */
    int n_msgs, cap;
    enum ds_format format;        /* the record's format */
    const char *joined;           /* alpaca with an input: instruction "\n" input */
    size_t joined_len;
    /* private, reused from record to record */
    struct ds_json *json;         /* the parser's state and the record's tree */
    char *scratch;                /* decoded strings, the joined alpaca text */
    size_t scratch_cap, scratch_used;
};

/* Check one record (n bytes, from line `line`, for messages) of a file whose
 * format is *format and convert it. With *format DS_FORMAT_AUTO the
 * record's own format is used and, when the record is valid, stored in
 * *format. Returns 0 with ex filled, 1 with *code and a message (UTF-8, for
 * reports) when the record is bad, -1 when out of memory. The messages
 * point into rec (strings without escapes) and into ex: they are valid
 * while rec is and until the next call.
 *
 * The JSON grammar is jansson's json_loadb with JSON_DECODE_ANY and
 * JSON_REJECT_DUPLICATES (RFC 8259; "\u0000" refused; integers within
 * long long; finite reals; values nested at most 2048 deep), parsed without
 * building jansson objects: a record of n bytes takes at most 24 (n + 1)
 * bytes of tree and 2n + 1 of decoded text (strings, alpaca's joined user
 * text). */
int ds_parse_record(const char *rec, size_t n, long line, enum ds_format *format,
                    struct ds_example *ex, enum ds_code *code, char *msg, size_t msglen);
void ds_example_free(struct ds_example *ex);

/* ---- a conversation -> ids and mask ---- */

struct ds_tokens {
    int *ids;                /* (n) */
    unsigned char *mask;     /* (n) 1: ids[i] is trained on */
    int n, cap;
};

/* Render ex (ds_parse_record's) into out->ids/mask, grown as needed, with
 * chat_render (no generation prompt): text records with the raw template,
 * alpaca records with an input joined for templates other than alpaca.
 * Returns 0, or -1 with a message (the template cannot express the
 * conversation, out of memory). */
int ds_render(const struct tokenizer *t, enum chat_template tmpl, int train_on_inputs,
              const struct ds_example *ex, struct ds_tokens *out, char *err,
              size_t errlen);
void ds_tokens_free(struct ds_tokens *t);

/* ---- examples -> training windows ---- */

struct ds_windows {
    int *ids;          /* (n, seq_len + 1), owned */
    int *targets;      /* (n, seq_len), owned; -1: no loss */
    int n;             /* windows */
    int seq_len;
    int pack;
    int pad_id;
    long n_examples;   /* examples added (kept or dropped) */
    long n_truncated;  /* examples cut to seq_len + 1 tokens */
    long n_dropped;    /* examples with no trained target left */
    long n_tokens;     /* ids placed in windows (not padding) */
    long n_targets;    /* targets >= 0 */
    int cap;           /* windows allocated */
    int used;          /* ids placed in the last window (packing) */
};

/* 0, or -1 when seq_len < 1. pad_id fills the unused ids. */
int ds_windows_init(struct ds_windows *w, int seq_len, int pack, int pad_id);
/* Add one example (n ids, mask as in ds_tokens). 0, or -1 out of memory
 * (w unchanged) or more than INT_MAX windows. */
int ds_windows_add(struct ds_windows *w, const int *ids, const unsigned char *mask, int n);
/* Move the last round(fraction * n) windows into val (at least one when
 * fraction > 0, always leaving train one); val is overwritten with its own
 * copy (its n_targets counts them; train's counters keep describing every
 * example added); later adds to train open a new window. 0, or -1 out of
 * memory (nothing moved). */
int ds_windows_split(struct ds_windows *train, struct ds_windows *val, double fraction);
void ds_windows_free(struct ds_windows *w);

/* The trainer's view of w (valid while w lives and is not added to). */
static inline struct token_windows ds_windows_view(const struct ds_windows *w)
{
    struct token_windows t = {w->ids, w->n, w->seq_len, w->targets};
    return t;
}

/* ---- a whole file -> windows ---- */

struct ds_opts {
    enum ds_format format;       /* DS_FORMAT_AUTO: detect */
    enum chat_template tmpl;
    int train_on_inputs;
    int seq_len;
    int pack;
    int pad_id;                  /* < 0: the tokenizer's EOS, else 0 */
    size_t max_record;           /* 0: DS_MAX_RECORD */
};

/* Read a dataset file in chunks and build its windows. Fails at the first
 * bad record with "PATH: line L: CODE: message" (owlore validate lists them
 * all), when the file cannot be read, or when no window results. */
int ds_load(struct ds_windows *w, const char *path, const struct tokenizer *t,
            const struct ds_opts *o, char *err, size_t errlen);

#endif
