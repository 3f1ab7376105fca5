"""What every test process of the course adds to its environment (standard library only)."""

import os

# No test talks TLS: the LLM is the offline coach, or a closed port, over plain http on
# 127.0.0.1. Yet every OpenAI client an app makes (from lesson 22, two at each start of the app,
# and the tests start it for almost every test) builds an SSL context that parses the system's
# CA certificates: 20 ms each, 40 % of lesson 23's model suite (5.2 s of CPU, 3.0 s without).
# httpx reads SSL_CERT_FILE, then SSL_CERT_DIR (its documented environment variables): with no
# file, and a directory setting where OpenSSL finds no certificate (os.devnull), a context costs
# 0.2 ms, and a TLS connection, should a test ever make one, fails its certificate check instead
# of passing unverified.
NO_CERTIFICATES = {"SSL_CERT_FILE": "", "SSL_CERT_DIR": os.devnull}
