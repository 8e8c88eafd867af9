/*
 * chat.h: chat templates: a conversation -> token ids and a loss mask.
 *
 * A template renders messages (system / user / assistant) exactly as the
 * model's own chat template (Hugging Face apply_chat_template) would, and
 * marks which tokens the loss is computed on: by default only the assistant
 * turns (their content and their end-of-turn token), or every token when
 * train_on_inputs is set. An assistant message with weight 0 is not trained
 * on. Templates: ChatML (SmolLM2, Qwen), LLaMA-2 chat, LLaMA-3 chat, Alpaca,
 * and raw (contents concatenated).
 */
#ifndef OWLORE_CHAT_H
#define OWLORE_CHAT_H

#include <stddef.h>

#include "tokenizer.h"

enum chat_template { CHAT_CHATML, CHAT_LLAMA2, CHAT_LLAMA3, CHAT_ALPACA, CHAT_RAW,
                     CHAT_TEMPLATE_COUNT };

enum chat_role { ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT };

struct chat_message {
    enum chat_role role;
    const char *content;   /* UTF-8 */
    size_t len;
    int weight;            /* assistant: 1 train on it (default), 0 not */
};

const char *chat_template_name(enum chat_template t);
int chat_template_parse(const char *name, enum chat_template *t); /* 0 / -1 */

/* Recognise a model's template from its Jinja chat_template text
 * (tokenizer_config.json or GGUF tokenizer.chat_template); -1 when unknown. */
int chat_template_detect(const char *jinja, enum chat_template *t);

/* Render msgs into ids (capacity max) and mask: mask[i] = 1 when token
 * ids[i] is trained on (it is the target predicted at position i - 1).
 * With add_generation_prompt the assistant header is appended (inference).
 * Returns the number of ids, or -1 with a message (capacity, a role order the
 * template cannot express). */
int chat_render(const struct tokenizer *tok, enum chat_template t,
                const struct chat_message *msgs, int n_msgs, int train_on_inputs,
                int add_generation_prompt, int *ids, unsigned char *mask, int max,
                char *err, size_t errlen);

#endif
