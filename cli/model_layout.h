/*
 * model_layout.h - where each part of a StableAvatar model lives under
 * --models DIR (SPEC 7.1), and the sizes of encore's tiny model.
 *
 * The published layout holds .pth/.pt/.safetensors files; encore's tiny
 * model uses the same directories and base names with .safetensors files.
 * Readers pick the format by content, so either works for every part.
 */
#ifndef ENCORE_MODEL_LAYOUT_H
#define ENCORE_MODEL_LAYOUT_H

#define MODEL_DIT_DIR "Wan2.1-Fun-V1.1-1.3B-InP"
#define MODEL_DIT_FILE_ST "diffusion_pytorch_model.safetensors"
#define MODEL_AVATAR_DIR "StableAvatar-1.3B"
#define MODEL_AVATAR_FILE "transformer3d-square.pt"
#define MODEL_VAE_FILE "Wan2.1_VAE" /* .pth published, .safetensors tiny */
#define MODEL_T5_FILE "models_t5_umt5-xxl-enc-bf16"
#define MODEL_CLIP_FILE "models_clip_open-clip-xlm-roberta-large-vit-huge-14"
#define MODEL_TOKENIZER "google/umt5-xxl/spiece.model"
#define MODEL_WAV2VEC_DIR "wav2vec2-base-960h"
#define MODEL_WAV2VEC_FILE "model.safetensors"

/* Tiny-model widths shared between the DiT and the encoders feeding it. */
#define MODEL_TINY_TEXT_DIM 32
#define MODEL_TINY_CLIP_DIM 64
#define MODEL_TINY_AUDIO_DIM 768

#endif
