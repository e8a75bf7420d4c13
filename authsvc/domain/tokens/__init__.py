"""What you carry: minting, signing keys and rotation, encryption, the KEK, and the state Verify reads."""
