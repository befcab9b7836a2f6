"""Recordings that are safe to share: `consentwatch capture`.

A user who can see a logged-in settings page records it (through the running proxy, or from a .flow/.har
they already have); everything personal is replaced by stable placeholders in memory before a byte is
written, and a final pass refuses to write a file in which a known secret pattern survives.

    patterns  what secrets and personal data look like (pure)
    scrub     the scrubber: one recording's flows in, the same flows without the personal parts out
    verify    the final pass: known secret patterns and every removed value, anywhere in a recording
    files     reading and writing recordings (.flow and .har), scrub-then-verify-then-write
    record    the proxy side of `capture`: an addon that records one platform's flows while asked to
"""
