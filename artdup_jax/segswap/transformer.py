"""The SegSwap co-segmentation transformer in Flax Linen.

Input: two L2-normalised backbone feature maps ``(B, hx, wx, 1024)`` and ``(B, hy, wy, 1024)``.
Output: one ``(B, h, w, 3)`` map per image, channels (x, y, mask), all probabilities in
[1e-7, 1 - 1e-7]: (x, y) = where the cell's content lies in the *other* image, normalised [0, 1] over
its width / height with cell centres at (j + 0.5) / w; mask = co-segmentation probability.

Structure (the released "small" model; names mirror the checkpoint's ``net.*`` keys):
  feat_proj        1x1 conv 1024 -> d_model, shared by both images, then channel dropout (Dropout2d)
  encoder_blocks_k blocks of two slots ``layer1`` / ``layer2``, each of kind
                   I  ``inner_encoder_layer``: add 0.1 · PE to each image's tokens, then each token attends
                      only to its own image;
                   C  ``cross_encoder_layer``: each token attends only to the *other* image's tokens;
                   N  no parameters, identity.
                   "ICICIN" gives five real layers I C I C I. One encoder layer serves both images.
  final_linear     1x1 conv d_model -> 3, sigmoid, clamp.

The official code runs one masked attention over the concatenated ``[X; Y]`` sequence. Here every layer
runs two attentions with shared weights (X->X, Y->Y or X->Y, Y->X), which is the same function at half
the cost, and lets the two maps differ in size.

Encoder layers are PyTorch's (1.7) post-norm ``TransformerEncoderLayer``:
  h = LN1(z + Drop(MHA(z))),  out = LN2(h + Drop(W2 Drop(ReLU(W1 h + b1)) + b2)),  LN eps 1e-5.
Attention follows ``nn.MultiheadAttention``: one fused input projection (``in_proj``, q | k | v column
blocks, heads as contiguous ``head_dim`` chunks), queries scaled by 1/sqrt(head_dim) after the bias,
dropout on the attention probabilities. Dropout is active only with ``deterministic=False`` (needs a
``"dropout"`` rng).

Key masks: ``(B, h, w)`` bool, True = the token may serve as a key (the *opposite* of PyTorch's
``key_padding_mask``). A masked token still queries and gets an output; it is just never attended to,
in any layer. If every key of an image is masked, attention over it falls back to uniform weights over
all its keys instead of PyTorch's NaN; callers should not rely on that case.
"""

from __future__ import annotations

import dataclasses
import math

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from artdup_jax.segswap.position import sine_position_encoding

PROBABILITY_EPS = 1e-7
LAYER_NORM_EPS = 1e-5
LAYER_KINDS = {"I": "inner", "C": "cross", "N": "empty"}


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """Hyper-parameters; the defaults are the released "small" configuration."""

    feature_dim: int = 1024  # backbone channels
    d_model: int = 256
    num_heads: int = 2
    dim_feedforward: int = 256
    dropout: float = 0.1  # everywhere: input channels, attention probabilities, residual branches, FFN
    layer_types: str = "ICICIN"  # read in pairs: one pair per encoder block
    position_weight: float = 0.1  # PE scale, added before every I layer
    feature_weight: float = 1.0  # scale of the projected features

    def __post_init__(self):
        if len(self.layer_types) % 2 or set(self.layer_types) - set(LAYER_KINDS):
            raise ValueError(f"layer_types must be pairs of I/C/N, got {self.layer_types!r}")
        if self.d_model % self.num_heads or self.d_model % 4:
            raise ValueError(f"d_model {self.d_model} must be divisible by num_heads and by 4")


SMALL = TransformerConfig()


def torch_uniform_init(fan_in: int):
    """PyTorch's default Linear / Conv init for weights and biases: U(±1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def torch_dense(features: int, fan_in: int) -> nn.Dense:
    return nn.Dense(features, kernel_init=torch_uniform_init(fan_in), bias_init=torch_uniform_init(fan_in))


def torch_conv1x1(features: int, fan_in: int) -> nn.Conv:
    return nn.Conv(features, (1, 1), kernel_init=torch_uniform_init(fan_in), bias_init=torch_uniform_init(fan_in))


class InProjection(nn.Module):
    """``in_proj_weight`` / ``in_proj_bias`` of ``nn.MultiheadAttention``: kernel ``(d, 3d)`` = [W_q | W_k | W_v]ᵀ."""

    d_model: int

    def setup(self):
        self.kernel = self.param("kernel", nn.initializers.xavier_uniform(), (self.d_model, 3 * self.d_model))
        self.bias = self.param("bias", nn.initializers.zeros, (3 * self.d_model,))

    def query(self, x: jnp.ndarray) -> jnp.ndarray:
        d = self.d_model
        return x @ self.kernel[:, :d] + self.bias[:d]

    def key_value(self, x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        d = self.d_model
        kv = x @ self.kernel[:, d:] + self.bias[d:]
        return kv[..., :d], kv[..., d:]


class MultiheadAttention(nn.Module):
    """``nn.MultiheadAttention`` with separate query and key/value token sets (no ``attn_mask``)."""

    d_model: int
    num_heads: int
    dropout: float

    def setup(self):
        self.in_proj = InProjection(self.d_model)
        self.out_proj = nn.Dense(self.d_model, kernel_init=torch_uniform_init(self.d_model),
                                 bias_init=nn.initializers.zeros)
        self.attention_dropout = nn.Dropout(self.dropout)

    def __call__(self, queries: jnp.ndarray, memory: jnp.ndarray, key_mask: jnp.ndarray | None,
                 deterministic: bool) -> jnp.ndarray:
        """queries ``(B, Nq, d)``, memory ``(B, Nk, d)``, key_mask ``(B, Nk)`` bool or None -> ``(B, Nq, d)``."""
        batch, n_queries, d = queries.shape
        head_dim = d // self.num_heads

        def heads(x):  # (B, N, d) -> (B, heads, N, head_dim): heads are contiguous channel chunks
            return x.reshape(batch, -1, self.num_heads, head_dim).transpose(0, 2, 1, 3)

        q = heads(self.in_proj.query(queries)) * (head_dim ** -0.5)
        k, v = map(heads, self.in_proj.key_value(memory))
        logits = jnp.einsum("bhqc,bhkc->bhqk", q, k)
        if key_mask is not None:
            logits = jnp.where(key_mask[:, None, None, :], logits, jnp.finfo(logits.dtype).min)
        weights = self.attention_dropout(jax.nn.softmax(logits, axis=-1), deterministic=deterministic)
        out = jnp.einsum("bhqk,bhkc->bhqc", weights, v).transpose(0, 2, 1, 3).reshape(batch, n_queries, d)
        return self.out_proj(out)


class EncoderLayer(nn.Module):
    """PyTorch's post-norm ``TransformerEncoderLayer`` (ReLU), with keys/values from ``memory``."""

    config: TransformerConfig

    def setup(self):
        c = self.config
        self.self_attn = MultiheadAttention(c.d_model, c.num_heads, c.dropout)
        self.linear1 = torch_dense(c.dim_feedforward, c.d_model)
        self.linear2 = torch_dense(c.d_model, c.dim_feedforward)
        # Two-pass variance, as PyTorch's LayerNorm.
        self.norm1 = nn.LayerNorm(epsilon=LAYER_NORM_EPS, use_fast_variance=False)
        self.norm2 = nn.LayerNorm(epsilon=LAYER_NORM_EPS, use_fast_variance=False)
        self.dropout = nn.Dropout(c.dropout)  # one module, used at the three places PyTorch has dropout layers

    def __call__(self, queries, memory, key_mask, deterministic: bool):
        """``(B, Nq, d)`` tokens attending to ``(B, Nk, d)`` memory -> ``(B, Nq, d)``."""
        attended = self.self_attn(queries, memory, key_mask, deterministic)
        h = self.norm1(queries + self.dropout(attended, deterministic=deterministic))
        hidden = self.dropout(nn.relu(self.linear1(h)), deterministic=deterministic)
        return self.norm2(h + self.dropout(self.linear2(hidden), deterministic=deterministic))


class InnerAttentionLayer(nn.Module):
    """I layer: add the weighted PE, then each image attends to itself."""

    config: TransformerConfig

    def setup(self):
        self.inner_encoder_layer = EncoderLayer(self.config)

    def __call__(self, x, y, pos_x, pos_y, mask_x, mask_y, deterministic: bool):
        x = x + self.config.position_weight * pos_x
        y = y + self.config.position_weight * pos_y
        return (self.inner_encoder_layer(x, x, mask_x, deterministic),
                self.inner_encoder_layer(y, y, mask_y, deterministic))


class CrossAttentionLayer(nn.Module):
    """C layer: each image attends to the other one only (both updates read the old tokens)."""

    config: TransformerConfig

    def setup(self):
        self.cross_encoder_layer = EncoderLayer(self.config)

    def __call__(self, x, y, pos_x, pos_y, mask_x, mask_y, deterministic: bool):
        return (self.cross_encoder_layer(x, y, mask_y, deterministic),
                self.cross_encoder_layer(y, x, mask_x, deterministic))


class EmptyLayer(nn.Module):
    """N layer: identity, no parameters."""

    config: TransformerConfig

    def __call__(self, x, y, pos_x, pos_y, mask_x, mask_y, deterministic: bool):
        return x, y


_LAYER_CLASSES = {"I": InnerAttentionLayer, "C": CrossAttentionLayer, "N": EmptyLayer}


class EncoderLayerBlock(nn.Module):
    """Two consecutive layers, ``layer1`` then ``layer2`` (the checkpoint's ``encoder_blocks.k``)."""

    config: TransformerConfig
    kinds: str  # two letters of I / C / N

    def setup(self):
        self.layer1 = _LAYER_CLASSES[self.kinds[0]](self.config)
        self.layer2 = _LAYER_CLASSES[self.kinds[1]](self.config)

    def __call__(self, x, y, pos_x, pos_y, mask_x, mask_y, deterministic: bool):
        x, y = self.layer1(x, y, pos_x, pos_y, mask_x, mask_y, deterministic)
        return self.layer2(x, y, pos_x, pos_y, mask_x, mask_y, deterministic)


class CoSegmentationTransformer(nn.Module):
    """Feature maps of an image pair -> per-cell (x, y, mask) for each image. See the module docstring.

    ``__call__(features_x, features_y, key_mask_x=None, key_mask_y=None, deterministic=True)``:
      features_x: ``(B, hx, wx, feature_dim)``, L2-normalised backbone features (NHWC).
      features_y: ``(B, hy, wy, feature_dim)``.
      key_mask_x / key_mask_y: ``(B, h, w)`` bool, True = usable as a key; None = every token.
    Returns ``(out_x, out_y)``: ``(B, hx, wx, 3)`` and ``(B, hy, wy, 3)`` float32, channels (x, y, mask).
    """

    config: TransformerConfig = SMALL

    def setup(self):
        c = self.config
        self.feat_proj = torch_conv1x1(c.d_model, c.feature_dim)
        # Dropout2d: one keep/drop decision per (sample, channel), shared over the spatial axes.
        self.feature_dropout = nn.Dropout(c.dropout, broadcast_dims=(1, 2))
        self.encoder_blocks = [
            EncoderLayerBlock(c, c.layer_types[i:i + 2]) for i in range(0, len(c.layer_types), 2)
        ]
        self.final_linear = torch_conv1x1(3, c.d_model)

    def tokens(self, features: jnp.ndarray, deterministic: bool) -> jnp.ndarray:
        """``(B, h, w, feature_dim)`` -> projected tokens ``(B, h·w, d_model)``, row-major."""
        chex.assert_rank(features, 4)
        chex.assert_axis_dimension(features, -1, self.config.feature_dim)
        projected = self.config.feature_weight * self.feat_proj(features)
        projected = self.feature_dropout(projected, deterministic=deterministic)
        batch, height, width, channels = projected.shape
        return projected.reshape(batch, height * width, channels)

    def head(self, tokens: jnp.ndarray, height: int, width: int) -> jnp.ndarray:
        """``(B, h·w, d_model)`` -> ``(B, h, w, 3)`` probabilities (x, y, mask), clamped to [1e-7, 1 - 1e-7]."""
        maps = tokens.reshape(tokens.shape[0], height, width, tokens.shape[-1])
        return jnp.clip(jax.nn.sigmoid(self.final_linear(maps)), PROBABILITY_EPS, 1 - PROBABILITY_EPS)

    def __call__(self, features_x, features_y, key_mask_x=None, key_mask_y=None, deterministic: bool = True):
        chex.assert_equal_shape_prefix([features_x, features_y], 1)
        shape_x, shape_y = features_x.shape[1:3], features_y.shape[1:3]
        x = self.tokens(features_x, deterministic)
        y = self.tokens(features_y, deterministic)
        pos_x = sine_position_encoding(*shape_x, self.config.d_model).reshape(1, -1, self.config.d_model)
        pos_y = sine_position_encoding(*shape_y, self.config.d_model).reshape(1, -1, self.config.d_model)
        mask_x = _flat_key_mask(key_mask_x, features_x)
        mask_y = _flat_key_mask(key_mask_y, features_y)
        for block in self.encoder_blocks:
            x, y = block(x, y, pos_x, pos_y, mask_x, mask_y, deterministic)
        return self.head(x, *shape_x), self.head(y, *shape_y)


def _flat_key_mask(key_mask, features):
    if key_mask is None:
        return None
    chex.assert_shape(key_mask, features.shape[:3])
    return key_mask.reshape(key_mask.shape[0], -1).astype(bool)
