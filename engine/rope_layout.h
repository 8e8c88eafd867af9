/*
 * rope_layout.h: converting q/k projection rows between RoPE layouts.
 *
 * The engine rotates half-split pairs (i, i + hd/2) inside each head, as
 * Hugging Face does. llama2.c checkpoints and GGUF files store q and k rows
 * for adjacent-pair rotation (2i, 2i + 1), so their loaders permute the rows
 * (model-formats.md section 7):
 *   half_split_row[h*hd + c*hd/2 + i] = adjacent_row[h*hd + 2*i + c]
 * for head h, i in [0, hd/2), c in {0, 1}. q uses n_heads, k n_kv_heads.
 */
#ifndef OWLORE_ROPE_LAYOUT_H
#define OWLORE_ROPE_LAYOUT_H

/* Copy src (nh*hd, cols), rows in adjacent-pair order, to dst in half-split
 * order. dst and src must not overlap. */
void rope_rows_adjacent_to_half_split(float *dst, const float *src, int nh, int hd,
                                      int cols);

#endif
