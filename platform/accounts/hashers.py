"""Password hashing: Argon2id with OWASP's recommended parameters (Password Storage Cheat Sheet:
19 MiB of memory, 2 iterations, 1 lane).

Django's own Argon2 defaults (100 MiB, 8 lanes) assume cores a 2-core web pod does not have: a hash
there took ~0.5 s of CPU, PBKDF2 at Django's 1,000,000 iterations ~0.3-0.6 s, this one ~30 ms.
Every login, password change and tenant provisioning pays it, so a cheaper hash of equal standing
also narrows the CPU a login flood can burn (the login throttle bounds the rest). The parameters
are stored in each hash, so raising them later re-hashes users at their next login.
"""

from django.contrib.auth.hashers import Argon2PasswordHasher


class Argon2idHasher(Argon2PasswordHasher):
    time_cost = 2
    memory_cost = 19 * 1024  # KiB
    parallelism = 1
