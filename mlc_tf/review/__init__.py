"""mlc-review: a local web app to look at a tagger's answers and fix a corpus's labels.

``state`` loads what the pages show (corpus, model predictions, suspects,
the corrections file), ``tagger`` asks the model through the serving
signature, ``app`` is the Flask app with its pages, templates and static assets.
"""
