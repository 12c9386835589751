"""Guests: KVM or TCG, launcher command lines, live sessions and their pool, roots, insmod."""
