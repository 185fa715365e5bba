"""
echolab's tests. They run in English whatever the locale of the person
running them: the programs they start and the texts they compare are in
English unless a test asks for Russian (L{tests.client_support.LOCALES}).
"""

import os

os.environ.pop("LANGUAGE", None)
os.environ["LC_ALL"] = "C.UTF-8"
