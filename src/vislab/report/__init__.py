"""`vislab report`: the HTML and Markdown report of one or more run folders."""
