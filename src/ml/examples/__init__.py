"""Real example problems: generators and loaders of data sets the library ships."""
