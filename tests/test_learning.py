"""Learning, not only running: a small LaS classifier solves a task whose label joins tokens far apart."""

from __future__ import annotations

import torch

from configuration_las import LaSConfig
from modeling_las import LaSForSequenceClassification

import os
LENGTH = int(os.environ.get("LEARN_LENGTH", 512))
NOISE_TOKENS = (3, 10)  # ids 3..9 are noise; 1 and 2 are the two kinds of marker token


def far_marker_batch(batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A marker (id 1 or 2) in the first 64 positions gives the label; a decoy marker of independent kind sits in the
    last 64 positions, 384 to 511 tokens later.

    Every other token is noise. Counting marker kinds gets at most 75% (when the two kinds differ it is a coin flip),
    and nothing near the end of the sequence says which marker came first: above 95% a model must carry the first
    marker's identity across hundreds of positions and tell it apart from the nearby decoy.
    """
    ids = torch.randint(*NOISE_TOKENS, (batch_size, LENGTH), generator=generator)
    label_kind = torch.randint(1, 3, (batch_size,), generator=generator)
    decoy_kind = torch.randint(1, 3, (batch_size,), generator=generator)
    rows = torch.arange(batch_size)
    ids[rows, torch.randint(0, 64, (batch_size,), generator=generator)] = label_kind
    ids[rows, torch.randint(LENGTH - 64, LENGTH, (batch_size,), generator=generator)] = decoy_kind
    return ids, label_kind - 1


def test_las_learns_a_long_range_dependency():
    torch.manual_seed(0)
    config = LaSConfig(
        vocab_size=10,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=LENGTH,
        num_labels=2,
        las_alpha_max=0.1,
        las_pool_size=3,
    )
    model = LaSForSequenceClassification(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    train_generator = torch.Generator().manual_seed(1)
    test_ids, test_labels = far_marker_batch(512, torch.Generator().manual_seed(2))

    def held_out_accuracy() -> float:
        model.eval()
        with torch.no_grad():
            predictions = torch.cat([model(chunk).logits.argmax(-1) for chunk in test_ids.split(128)])
        model.train()
        return (predictions == test_labels).float().mean().item()

    accuracy = 0.0
    for step in range(1, 401):
        ids, labels = far_marker_batch(32, train_generator)
        loss = model(ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step % 50 == 0:
            accuracy = held_out_accuracy()
            print(f"step {step}: loss {loss.item():.3f} held-out accuracy {accuracy:.3f}")
            if accuracy > 0.95:
                break
    assert accuracy > 0.95, f"held-out accuracy {accuracy:.3f} after {step} steps"
