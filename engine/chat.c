/*
 * chat.c: chat templates (chat.h): a conversation -> token ids and loss mask.
 *
 * A conversation is first laid out as the model's Jinja template renders it:
 * a sequence of special tokens (inserted as ids, never looked for in message
 * text) and text runs, each byte of text labelled as input, trained
 * (assistant turns) or never trained (assistant turns with weight 0). Each
 * text run is then encoded as `tokenizers` encodes the text between two
 * special tokens of the rendered string (tok_encode_text, with special-token
 * text in message content left as text), and a token is trained when its
 * byte span overlaps a trained byte, exactly what the rendered string
 * tokenized whole would give.
 *
 * Templates (as the models' own chat_template renders them):
 *   chatml  <|im_start|>{role}\n{content}<|im_end|>\n ...; generation prompt
 *           <|im_start|>assistant\n. Trained: content + <|im_end|>. When the
 *           conversation has no system message and the tokenizer's own
 *           template holds a fixed default one (a literal
 *           '<|im_start|>system\n...<|im_end|>', as SmolLM2's and Qwen2.5's),
 *           it is rendered first, as that template does.
 *   llama2  Llama-2-chat: optional system folded into the first user turn as
 *           <<SYS>>\n{system}\n<</SYS>>\n\n; each user turn
 *           <s>[INST] {content.strip()} [/INST], each assistant turn
 *           " {content.strip()} </s>"; roles must alternate user/assistant.
 *           Trained: the assistant text after [/INST] and </s>.
 *   llama3  Llama-3-Instruct: <|begin_of_text|> once, then per message
 *           <|start_header_id|>{role}<|end_header_id|>\n\n{content|trim}<|eot_id|>;
 *           generation prompt <|start_header_id|>assistant<|end_header_id|>\n\n.
 *           Trained: content + <|eot_id|>.
 *   alpaca  the Stanford Alpaca prompt: the tokenizer's own BOS, the
 *           preamble (a system message replaces it), "\n\n### Instruction:\n"
 *           {user}, a second consecutive user message as "\n\n### Input:\n"
 *           (and the preamble that mentions an input), "\n\n### Response:\n"
 *           {assistant} EOS. Trained: assistant + EOS.
 *   raw     the tokenizer's own BOS, then the contents back to back, each
 *           assistant message followed by EOS. Trained: assistant + EOS.
 * With train_on_inputs every token is trained except those of weight-0
 * assistant turns. mask[0] is always 0 (nothing predicts the first token).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "tok_internal.h"

static const char *const NAMES[CHAT_TEMPLATE_COUNT] = {"chatml", "llama2", "llama3", "alpaca",
                                                       "raw"};

const char *chat_template_name(enum chat_template t)
{
    return t >= 0 && t < CHAT_TEMPLATE_COUNT ? NAMES[t] : "?";
}

int chat_template_parse(const char *name, enum chat_template *t)
{
    for (int i = 0; i < CHAT_TEMPLATE_COUNT; i++)
        if (strcmp(name, NAMES[i]) == 0) {
            *t = (enum chat_template)i;
            return 0;
        }
    return -1;
}

int chat_template_detect(const char *jinja, enum chat_template *t)
{
    if (!jinja)
        return -1;
    if (strstr(jinja, "<|im_start|>") && strstr(jinja, "<|im_end|>"))
        *t = CHAT_CHATML;
    else if (strstr(jinja, "<|start_header_id|>") && strstr(jinja, "<|end_header_id|>") &&
             strstr(jinja, "<|eot_id|>"))
        *t = CHAT_LLAMA3;
    else if (strstr(jinja, "[INST]") && strstr(jinja, "[/INST]") && strstr(jinja, "<<SYS>>"))
        *t = CHAT_LLAMA2;
    else if (strstr(jinja, "### Instruction:") && strstr(jinja, "### Response:"))
        *t = CHAT_ALPACA;
    else
        return -1;
    return 0;
}

/* ---- layout ---- */

enum label { L_INPUT, L_TRAIN, L_NEVER };

struct run {
    int id;              /* a special token, or -1 for text s[start, end) */
    size_t start, end;
    enum label label;    /* special tokens */
    int outside;         /* added by the tokenizer, not part of the template text */
};

struct range { size_t start, end; enum label label; };

struct layout {
    char *s;
    size_t len, cap;
    struct run *runs;
    int n, cap_runs;
    struct range *ranges;
    int nr, cap_ranges;
    int oom;
};

static void grow(void **p, int *cap, int need, size_t elem, int *oom)
{
    if (need <= *cap || *oom)
        return;
    int nc = *cap ? *cap * 2 : 16;
    while (nc < need)
        nc *= 2;
    void *q = realloc(*p, (size_t)nc * elem);
    if (!q) {
        *oom = 1;
        return;
    }
    *p = q;
    *cap = nc;
}

static void text(struct layout *l, const char *s, size_t n, enum label label)
{
    if (l->oom || n == 0)
        return;
    if (l->len + n > l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 256;
        while (nc < l->len + n)
            nc *= 2;
        char *q = realloc(l->s, nc);
        if (!q) {
            l->oom = 1;
            return;
        }
        l->s = q;
        l->cap = nc;
    }
    if (l->n == 0 || l->runs[l->n - 1].id >= 0) {
        grow((void **)&l->runs, &l->cap_runs, l->n + 1, sizeof *l->runs, &l->oom);
        if (l->oom)
            return;
        l->runs[l->n++] = (struct run){-1, l->len, l->len, L_INPUT, 0};
    }
    if (label != L_INPUT) {
        grow((void **)&l->ranges, &l->cap_ranges, l->nr + 1, sizeof *l->ranges, &l->oom);
        if (l->oom)
            return;
        l->ranges[l->nr++] = (struct range){l->len, l->len + n, label};
    }
    memcpy(l->s + l->len, s, n);
    l->len += n;
    l->runs[l->n - 1].end = l->len;
}

static void lit(struct layout *l, const char *s)
{
    text(l, s, strlen(s), L_INPUT);
}

static void special(struct layout *l, int id, enum label label, int outside)
{
    grow((void **)&l->runs, &l->cap_runs, l->n + 1, sizeof *l->runs, &l->oom);
    if (!l->oom)
        l->runs[l->n++] = (struct run){id, 0, 0, label, outside};
}

/* Python's str.isspace, for Jinja's strip() and trim */
static int py_space(uint32_t cp)
{
    return tok_uspace(cp) || (cp >= 0x1C && cp <= 0x1F);
}

static void strip(const char **s, size_t *n)
{
    const unsigned char *p = (const unsigned char *)*s;
    size_t a = 0, b = *n;
    while (a < b) {
        uint32_t cp;
        int len = tok_utf8_next(p + a, b - a, &cp);
        if (!py_space(cp))
            break;
        a += (size_t)len;
    }
    while (b > a) {
        size_t i = b - 1;
        uint32_t cp;
        while (i > a && (p[i] & 0xC0) == 0x80)
            i--;
        tok_utf8_next(p + i, b - i, &cp);
        if (!py_space(cp))
            break;
        b = i;
    }
    *s += a;
    *n = b - a;
}

static const char *role_name(enum chat_role r)
{
    return r == ROLE_SYSTEM ? "system" : r == ROLE_USER ? "user" : "assistant";
}

static enum label turn_label(const struct chat_message *m)
{
    return m->role != ROLE_ASSISTANT ? L_INPUT : m->weight ? L_TRAIN : L_NEVER;
}

static int need_token(const struct tokenizer *tok, const char *s, int *id, const char *tmpl,
                      char *err, size_t errlen)
{
    *id = tokenizer_token_id(tok, s);
    if (*id < 0)
        snprintf(err, errlen, "the %s template needs the token %s, which this tokenizer lacks",
                 tmpl, s);
    return *id < 0 ? -1 : 0;
}

/* The default system message of a ChatML Jinja template (SmolLM2, Qwen2.5):
 * a string literal '<|im_start|>system\n...<|im_end|>' with nothing
 * interpolated, unescaped into buf. Returns its length, or -1. */
static int chatml_default_system(const char *jinja, char *buf, size_t cap)
{
    static const char head[] = "<|im_start|>system";
    for (const char *p = jinja ? strstr(jinja, head) : NULL; p; p = strstr(p + 1, head)) {
        if (p == jinja || (p[-1] != '\'' && p[-1] != '"'))
            continue; /* the literal must start with <|im_start|> */
        char quote = p[-1];
        const char *s = p + sizeof head - 1, *e = strstr(s, "<|im_end|>");
        if (!e)
            return -1;
        if (*s == '\n')
            s++;
        else if (s[0] == '\\' && s[1] == 'n')
            s += 2;
        else
            continue;
        if (memchr(s, quote, (size_t)(e - s)))
            continue; /* something is interpolated: not a fixed default */
        size_t n = 0;
        for (; s < e && n + 1 < cap; s++) {
            char c = *s;
            if (c == '\\' && s + 1 < e) {
                c = *++s;
                c = c == 'n' ? '\n' : c == 't' ? '\t' : c;
            }
            buf[n++] = c;
        }
        buf[n] = 0;
        return (int)n;
    }
    return -1;
}

static int lay_chatml(struct layout *l, const struct tokenizer *tok, const struct chat_message *m,
                      int n, int gen, char *err, size_t errlen)
{
    int start, end;
    char sys[1024];
    if (need_token(tok, "<|im_start|>", &start, "chatml", err, errlen) ||
        need_token(tok, "<|im_end|>", &end, "chatml", err, errlen))
        return -1;
    int def = m[0].role != ROLE_SYSTEM ? chatml_default_system(tok->chat_template, sys, sizeof sys)
                                       : -1;
    if (def >= 0) {
        special(l, start, L_INPUT, 0);
        lit(l, "system\n");
        text(l, sys, (size_t)def, L_INPUT);
        special(l, end, L_INPUT, 0);
        lit(l, "\n");
    }
    for (int i = 0; i < n; i++) {
        special(l, start, L_INPUT, 0);
        lit(l, role_name(m[i].role));
        lit(l, "\n");
        text(l, m[i].content, m[i].len, turn_label(&m[i]));
        special(l, end, turn_label(&m[i]), 0);
        lit(l, "\n");
    }
    if (gen) {
        special(l, start, L_INPUT, 0);
        lit(l, "assistant\n");
    }
    return 0;
}

static int lay_llama2(struct layout *l, const struct tokenizer *tok, const struct chat_message *m,
                      int n, char *err, size_t errlen)
{
    int first = 0;
    if (tok->bos_id < 0 || tok->eos_id < 0) {
        snprintf(err, errlen, "the llama2 template needs BOS and EOS tokens");
        return -1;
    }
    if (n > 0 && m[0].role == ROLE_SYSTEM)
        first = 1;
    for (int i = first; i < n; i++) {
        const char *c = m[i].content;
        size_t len = m[i].len;
        if ((m[i].role == ROLE_USER) != ((i - first) % 2 == 0)) {
            snprintf(err, errlen, "the llama2 template needs roles alternating user/assistant "
                     "after an optional first system message (message %d is %s)", i + 1,
                     role_name(m[i].role));
            return -1;
        }
        if (m[i].role == ROLE_USER) {
            special(l, tok->bos_id, L_INPUT, 0);
            lit(l, "[INST] ");
            if (i == first && first) {
                /* ('<<SYS>>\n' + system + '\n<</SYS>>\n\n' + content).strip() */
                const char *sys = m[0].content;
                size_t sl = m[0].len;
                const char *e = c;
                size_t el = len;
                strip(&e, &el);
                lit(l, "<<SYS>>\n");
                text(l, sys, sl, L_INPUT);
                lit(l, el > 0 ? "\n<</SYS>>\n\n" : "\n<</SYS>>");
                if (el > 0) {
                    /* only the end of the user content is stripped */
                    const char *s0 = c;
                    size_t keep = (size_t)(e - c) + el;
                    text(l, s0, keep, L_INPUT);
                }
            } else {
                strip(&c, &len);
                text(l, c, len, L_INPUT);
            }
            lit(l, " [/INST]");
        } else {
            enum label lab = turn_label(&m[i]);
            strip(&c, &len);
            text(l, " ", 1, lab);
            text(l, c, len, lab);
            text(l, " ", 1, lab);
            special(l, tok->eos_id, lab, 0);
        }
    }
    return 0;
}

static int lay_llama3(struct layout *l, const struct tokenizer *tok, const struct chat_message *m,
                      int n, int gen, char *err, size_t errlen)
{
    int sh, eh, eot;
    if (need_token(tok, "<|start_header_id|>", &sh, "llama3", err, errlen) ||
        need_token(tok, "<|end_header_id|>", &eh, "llama3", err, errlen) ||
        need_token(tok, "<|eot_id|>", &eot, "llama3", err, errlen))
        return -1;
    if (tok->bos_id < 0) {
        snprintf(err, errlen, "the llama3 template needs a BOS token");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const char *c = m[i].content;
        size_t len = m[i].len;
        strip(&c, &len);
        if (i == 0)
            special(l, tok->bos_id, L_INPUT, 0);
        special(l, sh, L_INPUT, 0);
        lit(l, role_name(m[i].role));
        special(l, eh, L_INPUT, 0);
        lit(l, "\n\n");
        text(l, c, len, turn_label(&m[i]));
        special(l, eot, turn_label(&m[i]), 0);
    }
    if (gen) {
        special(l, sh, L_INPUT, 0);
        lit(l, "assistant");
        special(l, eh, L_INPUT, 0);
        lit(l, "\n\n");
    }
    return 0;
}

static void tokenizer_bos(struct layout *l, const struct tokenizer *tok)
{
    for (int i = 0; i < tok->m->n_prefix; i++)
        special(l, tok->m->prefix[i], L_INPUT, 1);
}

static int lay_alpaca(struct layout *l, const struct tokenizer *tok, const struct chat_message *m,
                      int n, int gen, char *err, size_t errlen)
{
    int has_input = 0;
    for (int i = 1; i < n; i++)
        if (m[i].role == ROLE_SYSTEM) {
            snprintf(err, errlen, "the alpaca template takes a system message only first "
                     "(message %d is system)", i + 1);
            return -1;
        } else if (m[i].role == ROLE_USER && m[i - 1].role == ROLE_USER) {
            has_input = 1;
        }
    tokenizer_bos(l, tok);
    if (n > 0 && m[0].role == ROLE_SYSTEM)
        text(l, m[0].content, m[0].len, L_INPUT);
    else
        lit(l, has_input ? "Below is an instruction that describes a task, paired with an input "
                           "that provides further context. Write a response that appropriately "
                           "completes the request."
                         : "Below is an instruction that describes a task. Write a response that "
                           "appropriately completes the request.");
    for (int i = 0; i < n; i++) {
        if (m[i].role == ROLE_SYSTEM)
            continue;
        if (m[i].role == ROLE_USER) {
            lit(l, i > 0 && m[i - 1].role == ROLE_USER ? "\n\n### Input:\n"
                                                       : "\n\n### Instruction:\n");
            text(l, m[i].content, m[i].len, L_INPUT);
        } else {
            lit(l, "\n\n### Response:\n");
            text(l, m[i].content, m[i].len, turn_label(&m[i]));
            if (tok->eos_id >= 0)
                special(l, tok->eos_id, turn_label(&m[i]), 0);
        }
    }
    if (gen)
        lit(l, "\n\n### Response:\n");
    return 0;
}

static void lay_raw(struct layout *l, const struct tokenizer *tok, const struct chat_message *m,
                    int n)
{
    tokenizer_bos(l, tok);
    for (int i = 0; i < n; i++) {
        text(l, m[i].content, m[i].len, turn_label(&m[i]));
        if (m[i].role == ROLE_ASSISTANT && tok->eos_id >= 0)
            special(l, tok->eos_id, turn_label(&m[i]), 0);
    }
}

/* ---- encoding ---- */

static int overlaps(const struct layout *l, size_t a, size_t b, enum label label)
{
    for (int i = 0; i < l->nr; i++)
        if (l->ranges[i].label == label && l->ranges[i].start < b && a < l->ranges[i].end)
            return 1;
    return 0;
}

static int trained(enum label label, int train_on_inputs)
{
    return label == L_TRAIN || (train_on_inputs && label == L_INPUT);
}

int chat_render(const struct tokenizer *tok, enum chat_template t,
                const struct chat_message *msgs, int n_msgs, int train_on_inputs,
                int add_generation_prompt, int *ids, unsigned char *mask, int max,
                char *err, size_t errlen)
{
    struct layout l = {0};
    int rc = -1, n = 0, *spans = NULL, in_text = 0;
    if (n_msgs < 1) {
        snprintf(err, errlen, "a conversation needs at least one message");
        return -1;
    }
    switch (t) {
    case CHAT_CHATML:
        rc = lay_chatml(&l, tok, msgs, n_msgs, add_generation_prompt, err, errlen);
        break;
    case CHAT_LLAMA2:
        rc = lay_llama2(&l, tok, msgs, n_msgs, err, errlen);
        break;
    case CHAT_LLAMA3:
        rc = lay_llama3(&l, tok, msgs, n_msgs, add_generation_prompt, err, errlen);
        break;
    case CHAT_ALPACA:
        rc = lay_alpaca(&l, tok, msgs, n_msgs, add_generation_prompt, err, errlen);
        break;
    case CHAT_RAW:
        lay_raw(&l, tok, msgs, n_msgs);
        rc = 0;
        break;
    default:
        snprintf(err, errlen, "unknown chat template %d", (int)t);
    }
    if (rc != 0)
        goto out;
    rc = -1;
    spans = malloc(sizeof(int) * 2 * (size_t)(max > 0 ? max : 1));
    if (l.oom || !spans) {
        snprintf(err, errlen, "out of memory rendering the conversation");
        goto out;
    }
    for (int r = 0; r < l.n; r++) {
        const struct run *run = &l.runs[r];
        if (run->id >= 0) {
            if (n >= max)
                goto full;
            ids[n] = run->id;
            mask[n++] = (unsigned char)trained(run->label, train_on_inputs);
            in_text |= !run->outside;
            continue;
        }
        int k = tok_encode_text(tok, l.s + run->start, run->end - run->start, 0, !in_text,
                                ids + n, spans + 2 * n, max - n);
        if (k < 0)
            goto full;
        for (int i = n; i < n + k; i++) {
            size_t a = run->start + (size_t)spans[2 * i], b = run->start + (size_t)spans[2 * i + 1];
            mask[i] = (unsigned char)(overlaps(&l, a, b, L_TRAIN) ||
                                      (train_on_inputs && !overlaps(&l, a, b, L_NEVER)));
        }
        n += k;
        in_text = 1;
    }
    if (n > 0)
        mask[0] = 0;
    rc = n;
    goto out;
full:
    snprintf(err, errlen, "the conversation is longer than %d tokens", max);
out:
    free(l.s);
    free(l.runs);
    free(l.ranges);
    free(spans);
    return rc;
}
