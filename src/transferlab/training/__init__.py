"""The one training engine every path calls: backbones, heads, strategies, kept-epoch choice."""
